"""CSRF protection of the payment page's forms: a signed double-submit token.

The browser holds a random nonce in a SameSite=Strict, HttpOnly cookie; each form carries
HMAC(key, nonce, session id). A POST is accepted only when the two match, so another
site can neither read nor forge the token. The key is an installation secret generated
once and kept in the database, encrypted with the installation key, so every process
agrees on it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

COOKIE = "toffeepay_csrf"
# Over https the cookie is bound to this exact host (no Domain, Path=/, Secure).
SECURE_COOKIE = "__Host-toffeepay_csrf"
FIELD = "csrf_token"
MAX_AGE = 24 * 3600
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")


def derive_key(secret: str) -> bytes:
    """A key for this purpose only, so the installation secret can serve others too."""
    return hmac.new(secret.encode(), b"toffeepay checkout csrf v1", hashlib.sha256).digest()


class Csrf:
    def __init__(self, key: bytes, *, secure: bool) -> None:
        self.key = key
        self.secure = secure
        self.cookie = SECURE_COOKIE if secure else COOKIE

    @staticmethod
    def nonce(cookie: str | None) -> tuple[str, bool]:
        """The browser's nonce, or a new one (then True: it must be set as a cookie)."""
        if cookie and _NONCE.fullmatch(cookie):
            return cookie, False
        return secrets.token_urlsafe(32), True

    def token(self, nonce: str, session_id: str) -> str:
        return hmac.new(self.key, f"{nonce}\0{session_id}".encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, submitted: str | None, session_id: str, fetch_site: str | None) -> bool:
        if fetch_site == "cross-site" or not cookie or not submitted or not _NONCE.fullmatch(cookie):
            return False
        return hmac.compare_digest(self.token(cookie, session_id), submitted)

    def cookie_args(self, nonce: str) -> dict[str, object]:
        return {
            "key": self.cookie,
            "value": nonce,
            "max_age": MAX_AGE,
            "path": "/",
            "secure": self.secure,
            "httponly": True,
            "samesite": "strict",
        }
