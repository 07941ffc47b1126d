"""The return_url a player's browser is sent to when a session ends."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import DomainError, Reason

MAX_RETURN_URL = 2048
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})
_LOCAL_HOSTS = frozenset({"localhost"})
NON_ASCII_DIGITS = "{name} has digits other than 0-9 in its host or port"


def has_non_ascii_digits(netloc: str) -> bool:
    """Digits other than 0-9 (fullwidth, Arabic-Indic...) in a host or port: Python reads them, browsers do not."""
    return any(not ch.isascii() and ch.isdigit() for ch in netloc)


def is_local_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host in _LOCAL_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_return_url(url: str, *, live: bool) -> str:
    if len(url) > MAX_RETURN_URL:
        raise DomainError(Reason.INVALID_RETURN_URL, f"return_url is longer than {MAX_RETURN_URL} characters")
    if any(ord(ch) < 0x20 or ch.isspace() or 0x7F <= ord(ch) <= 0x9F for ch in url):
        raise DomainError(Reason.INVALID_RETURN_URL, "return_url contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DomainError(Reason.INVALID_RETURN_URL, "return_url is not a valid URL") from None
    if has_non_ascii_digits(parts.netloc):
        raise DomainError(Reason.INVALID_RETURN_URL, NON_ASCII_DIGITS.format(name="return_url"))
    scheme = parts.scheme.lower()
    if not scheme:
        raise DomainError(
            Reason.INVALID_RETURN_URL,
            "return_url needs a scheme, e.g. mygame://payment-complete or https://...",
        )
    if scheme in _FORBIDDEN_SCHEMES:
        raise DomainError(Reason.INVALID_RETURN_URL, f"return_url scheme {scheme!r} is not allowed")
    if scheme in {"http", "https"} and not parts.hostname:
        raise DomainError(Reason.INVALID_RETURN_URL, "return_url has no host")
    if live and scheme == "http" and not is_local_host(parts.hostname or ""):
        raise DomainError(Reason.INVALID_RETURN_URL, "live return_url must use https (http only to localhost)")
    return url


def with_session_id(url: str, session_id: str, token: str | None = None) -> str:
    """Add `session_id` (and the return `token`) to a URL's query, keeping what is there (custom schemes too)."""
    parts = urlsplit(url)
    ours = {"session_id", "token"} if token is not None else {"session_id"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query.append(("session_id", session_id))
    if token is not None:
        query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))
