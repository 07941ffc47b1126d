"""Verifying the return token: the `token` ToffeePay adds to `return_url` when a session ends.

A compact JWS (EdDSA over Ed25519) whose keys the server publishes at
`<base URL>/.well-known/jwks.json`. It lets a game client show the outcome at once, offline;
granting the item still follows the webhook or GetSessionStatus.

    claims = toffeepay.ReturnToken.verify(token, jwks, game_id="space_shooter")
    claims["status"]   # paid | failed | cancelled

Needs only `cryptography` (no HTTP): fetch the JWKS as you like, and fetch it again when a
token names a `kid` it does not have (the server rotated its key).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .webhook import SignatureVerificationError

ALGORITHM = "EdDSA"
# A token issued further ahead of this clock than this is refused as malformed.
FUTURE_IAT_SLACK = 60
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_TEXT_CLAIMS = ("session_id", "game_id", "user_id", "status")
_TIME_CLAIMS = ("iat", "exp")


def _fail(message: str, reason: str) -> SignatureVerificationError:
    return SignatureVerificationError(message, reason=reason)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part))
    except (binascii.Error, ValueError):
        value = None
    if not isinstance(value, dict):
        raise _fail(f"the token's {what} is not base64url JSON", "malformed")
    return value


def _key_set(jwks: Mapping[str, Any] | str | bytes) -> list[Mapping[str, Any]]:
    parsed = json.loads(jwks) if isinstance(jwks, str | bytes) else jwks
    keys = parsed.get("keys") if isinstance(parsed, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError('jwks must be a JSON Web Key Set: {"keys": [...]}')
    return [k for k in keys if isinstance(k, Mapping)]


class ReturnToken:
    @staticmethod
    def verify(token: str, jwks: Mapping[str, Any] | str | bytes, *, game_id: str) -> dict[str, Any]:
        """Verify a return token with the installation's JWKS and return its claims.

        `jwks` is the JSON of `/.well-known/jwks.json` (text, bytes or parsed). The claims are
        `session_id`, `game_id`, `user_id`, `status`, `iat` and `exp` (unix seconds).

        Raises SignatureVerificationError with `reason`: `malformed` (not a compact EdDSA
        JWS, or claims missing), `unknown_key` (no such `kid` in the JWKS: fetch it again),
        `bad_signature` (altered, or not signed by that key), `expired`, `wrong_game` (a
        token for another game).
        """
        if not game_id:
            raise ValueError("game_id is required")
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or not parts[2] or any(not set(p) <= _B64URL for p in parts):
            raise _fail("not a compact JWS (header.payload.signature)", "malformed")
        header_part, payload_part, signature_part = parts
        header = _json_object(header_part, "header")
        if header.get("alg") != ALGORITHM:
            raise _fail(f"alg {header.get('alg')!r} is not {ALGORITHM}", "malformed")
        kid = header.get("kid")
        jwk = next((k for k in _key_set(jwks) if k.get("kid") == kid), None)
        if jwk is None:
            raise _fail(f"no key with kid {kid!r} in the JWKS (fetch it again after a rotation)", "unknown_key")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
            raise _fail(f"key {kid!r} is not an Ed25519 key", "unknown_key")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"]))
        except (binascii.Error, ValueError):
            raise _fail(f"key {kid!r} is not an Ed25519 key", "unknown_key") from None
        try:
            public_key.verify(_b64decode(signature_part), f"{header_part}.{payload_part}".encode("ascii"))
        except (InvalidSignature, binascii.Error, ValueError):
            raise _fail("the signature does not match the token", "bad_signature") from None

        claims = _json_object(payload_part, "payload")
        for name in _TEXT_CLAIMS:
            if not isinstance(claims.get(name), str):
                raise _fail(f"claim {name} is missing", "malformed")
        for name in _TIME_CLAIMS:
            if not isinstance(claims.get(name), int) or isinstance(claims.get(name), bool):
                raise _fail(f"claim {name} is missing", "malformed")
        now = time.time()
        if now >= claims["exp"]:
            raise _fail(f"the token expired at {claims['exp']}", "expired")
        if claims["iat"] > now + FUTURE_IAT_SLACK:
            raise _fail(f"the token is issued in the future ({claims['iat']})", "malformed")
        if claims["game_id"] != game_id:
            raise _fail(f"the token is for game {claims['game_id']!r}, not {game_id!r}", "wrong_game")
        return claims
