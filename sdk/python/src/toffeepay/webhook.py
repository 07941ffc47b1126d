"""Verifying what ToffeePay sends: signed webhooks and legacy form callbacks.

Standard library only, so a game server can verify without the rest of the SDK.

    event = toffeepay.Webhook.construct_event(raw_body, request.headers["X-ToffeePay-Signature"], secret)

`X-ToffeePay-Signature` is `t=<unix seconds>,v1=<hex>`, where each `v1` is
HMAC-SHA256 keyed with the endpoint secret (the whole `whsec_...` string, UTF-8) over
`f"{t}." + raw_body`. During a secret rotation the header carries one `v1` per valid secret;
any one matching is enough. Always pass the raw body bytes, never re-serialised JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

DEFAULT_TOLERANCE = 300
SIGNATURE_HEADER = "X-ToffeePay-Signature"

Secret = str | Sequence[str]


class SignatureVerificationError(Exception):
    """The request is not provably from ToffeePay, or not recent: do not act on it.

    `reason` is one of `malformed_header`, `bad_signature`, `stale_timestamp`; legacy callbacks
    also `unknown_field` and `malformed_value`.
    """

    def __init__(self, message: str, *, reason: str, sig_header: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.sig_header = sig_header


def _secrets(secret: Secret) -> list[str]:
    found = [secret] if isinstance(secret, str) else list(secret)
    if not found or not all(isinstance(s, str) and s for s in found):
        raise ValueError("secret must be a non-empty string (or a list of them during a rotation)")
    return found


def _sign(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookSignature:
    """The signature scheme of `X-ToffeePay-Signature`."""

    @staticmethod
    def compute(payload: bytes | str, timestamp: int, secret: str) -> str:
        """The hex `v1` for this body and timestamp."""
        body = payload.encode() if isinstance(payload, str) else payload
        return _sign(secret, f"{timestamp}.".encode() + body)

    @staticmethod
    def parse_header(sig_header: str | None) -> tuple[int, list[str]]:
        """`t` and every `v1` of the header; raises SignatureVerificationError when malformed."""
        timestamp: int | None = None
        signatures: list[str] = []
        for part in (sig_header or "").split(","):
            key, sep, value = part.strip().partition("=")
            if not sep:
                continue
            if key == "t" and timestamp is None and value.isascii() and value.isdigit():
                timestamp = int(value)
            elif key == "v1" and value:
                signatures.append(value.lower())
        if timestamp is None or not signatures:
            raise SignatureVerificationError(
                "unable to extract a timestamp and v1 signatures from the header (expected t=<unix seconds>,v1=<hex>)",
                reason="malformed_header",
                sig_header=sig_header,
            )
        return timestamp, signatures

    @classmethod
    def verify_header(
        cls, payload: bytes | str, sig_header: str | None, secret: Secret, tolerance: int | None = DEFAULT_TOLERANCE
    ) -> None:
        """Raise SignatureVerificationError unless a `v1` matches a secret and `t` is recent.

        `tolerance` is in seconds either way of now; None skips the time check (only for
        replaying stored payloads whose signature you checked when they arrived).
        """
        timestamp, signatures = cls.parse_header(sig_header)
        expected = [cls.compute(payload, timestamp, s) for s in _secrets(secret)]
        # Compare every pair, so timing says nothing about which one matched.
        matched = False
        for want in expected:
            for got in signatures:
                matched |= hmac.compare_digest(want.encode(), got.encode())
        if not matched:
            raise SignatureVerificationError(
                "no v1 signature matches the expected signature for this payload (check the secret, "
                "and that you pass the raw request body)",
                reason="bad_signature",
                sig_header=sig_header,
            )
        if tolerance is not None and abs(time.time() - timestamp) > tolerance:
            raise SignatureVerificationError(
                f"timestamp {timestamp} is more than {tolerance} s from now (replayed or clock skew)",
                reason="stale_timestamp",
                sig_header=sig_header,
            )


@dataclass(frozen=True)
class Diagnosis:
    """Why a webhook does or does not verify (`Webhook.explain`).

    `reason` is None when valid, else one of: `malformed_header`, `stale_timestamp`,
    `body_added_newline`, `body_reencoded`, `wrong_secret`, `body_changed`.
    """

    valid: bool
    reason: str | None
    message: str
    timestamp: int | None = None
    # Seconds the header's `t` is ahead of now (negative: behind).
    skew_seconds: int | None = None


def _matches(payload: bytes, timestamp: int, signatures: list[str], secrets: list[str]) -> bool:
    matched = False
    for secret in secrets:
        want = WebhookSignature.compute(payload, timestamp, secret).encode()
        for got in signatures:
            matched |= hmac.compare_digest(want, got.encode())
    return matched


def _reencodings(payload: bytes) -> list[bytes]:
    """The bytes ToffeePay would have sent for this JSON: compact, UTF-8 or ASCII-escaped."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    return [json.dumps(value, separators=(",", ":"), ensure_ascii=ascii).encode() for ascii in (False, True)]


def _secret_variants(secret: str) -> list[tuple[str, str]]:
    """Other spellings of a secret people pass by mistake, each with what went wrong."""
    found = []
    if not secret.startswith("whsec_"):
        found.append(("whsec_" + secret, "the secret without its whsec_ prefix"))
    elif secret != secret.strip():
        found.append((secret.strip(), "the secret with spaces or a newline around it"))
    return found


class Webhook:
    @staticmethod
    def explain(
        payload: bytes | str,
        sig_header: str | None,
        secret: Secret,
        tolerance: int | None = DEFAULT_TOLERANCE,
        *,
        now: float | None = None,
    ) -> Diagnosis:
        """Say exactly why a webhook verifies or not, by the same rules as `construct_event`:
        a malformed header, a timestamp outside the tolerance (and by how much), a body with a
        newline added or re-encoded as JSON, a signature made with another secret, or other bytes."""
        body = payload.encode() if isinstance(payload, str) else payload
        secrets = _secrets(secret)
        try:
            timestamp, signatures = WebhookSignature.parse_header(sig_header)
        except SignatureVerificationError as exc:
            shown = "missing" if not sig_header else repr(sig_header[:120])
            return Diagnosis(False, "malformed_header", f"the signature header is {shown}: {exc}")
        skew = timestamp - round(time.time() if now is None else now)
        late = tolerance is not None and abs(skew) > tolerance
        if _matches(body, timestamp, signatures, secrets):
            if late:
                assert tolerance is not None
                direction = "in the past" if skew < 0 else "in the future"
                return Diagnosis(
                    False,
                    "stale_timestamp",
                    f"the signature is right, but its timestamp t={timestamp} is {abs(skew)} s {direction}, "
                    f"{abs(skew) - tolerance} s beyond the tolerance of {tolerance} s: a replayed or stored "
                    "request, or a clock that is off",
                    timestamp,
                    skew,
                )
            return Diagnosis(True, None, "valid: the signature matches and the timestamp is recent", timestamp, skew)
        stripped = body.rstrip(b"\r\n")
        if stripped != body and _matches(stripped, timestamp, signatures, secrets):
            return Diagnosis(
                False,
                "body_added_newline",
                f"the body has {len(body) - len(stripped)} byte(s) of newline added at its end; "
                "verify the raw request body exactly as received",
                timestamp,
                skew,
            )
        for candidate in _reencodings(body):
            if candidate != body and _matches(candidate, timestamp, signatures, secrets):
                return Diagnosis(
                    False,
                    "body_reencoded",
                    "the body is the same JSON but not the same bytes: it was parsed and serialised again "
                    "(spacing, key order or escapes changed); verify the raw request body, not re-encoded JSON",
                    timestamp,
                    skew,
                )
        for given in secrets:
            for variant, what in _secret_variants(given):
                if _matches(body, timestamp, signatures, [variant]):
                    return Diagnosis(
                        False, "wrong_secret", f"the signature was made with {what}; pass it whole", timestamp, skew
                    )
        if body in _reencodings(body):
            return Diagnosis(
                False,
                "wrong_secret",
                "the body is byte for byte what ToffeePay sends, but the signature was made with another secret "
                "(another endpoint's, the other mode's, or one rotated away)",
                timestamp,
                skew,
            )
        return Diagnosis(
            False,
            "body_changed",
            "the body's bytes differ from those that were signed (not the JSON ToffeePay sent, or changed on "
            "the way); verify the raw request body",
            timestamp,
            skew,
        )

    @staticmethod
    def construct_event(
        payload: bytes | str, sig_header: str | None, secret: Secret, tolerance: int | None = DEFAULT_TOLERANCE
    ) -> dict[str, Any]:
        """Verify a JSON webhook and return its event: {"id", "event", "timestamp", "mode", "data"}.

        Raises SignatureVerificationError (bad signature, stale timestamp, malformed header).
        Events can arrive more than once and out of order: deduplicate by `event["id"]`.
        """
        WebhookSignature.verify_header(payload, sig_header, secret, tolerance)
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise ValueError("webhook payload is not a JSON object")
        return event


class LegacyCallback:
    """Legacy form callbacks (`format: legacy_form`), checked by their `hash` and `timestamp`.

    The hash is over the other fields as `k=v`, sorted by key, joined by `&`, values not
    URL-encoded. That string splits one way only because no genuine value holds a raw `&` or
    `=` (`custom_parameters` writes them as the JSON escapes `\\u0026` and `\\u003d`, other
    values as `%26` and `%3D`), so `verify` refuses any value that does, and any field
    ToffeePay does not send: together they stop a hash being re-split into other fields.
    """

    FIELDS = frozenset(
        {
            "transaction_id",
            "status",
            "amount",
            "paid_amount",
            "currency",
            "site_id",
            "game_id",
            "user_id",
            "transaction_token",
            "custom_parameters",
            "timestamp",
            "hash",
        }
    )

    @staticmethod
    def compute_hash(fields: Mapping[str, str], secret: str) -> str:
        """Hex HMAC-SHA256 of the other fields as `k=v`, sorted by key, joined by `&`."""
        message = "&".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")
        return _sign(secret, message.encode())

    @staticmethod
    def _fields(fields: Mapping[str, str] | Iterable[tuple[str, str]] | bytes | str) -> dict[str, str]:
        if isinstance(fields, bytes | str):
            text = fields.decode() if isinstance(fields, bytes) else fields
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        elif isinstance(fields, Mapping):
            pairs = list(fields.items())
        else:
            pairs = list(fields)
        found: dict[str, str] = {}
        for key, value in pairs:
            if key in found:
                raise SignatureVerificationError(f"field {key!r} appears twice", reason="malformed_header")
            found[str(key)] = str(value)
        return found

    @classmethod
    def verify(
        cls,
        fields: Mapping[str, str] | Iterable[tuple[str, str]] | bytes | str,
        secret: Secret,
        tolerance: int | None = DEFAULT_TOLERANCE,
    ) -> dict[str, str]:
        """Check the callback's `hash`, then that its `timestamp` is recent; return its fields.

        `fields` is the parsed form (a dict, e.g. `request.form`) or the raw urlencoded body.
        During a secret rotation pass both secrets. `tolerance` is in seconds either way of
        now (default 5 minutes); None skips the time check (only for stored callbacks whose
        hash you checked when they arrived). Raises SignatureVerificationError with `reason`
        `unknown_field`, `malformed_value` (a raw `&` or `=`), `malformed_header` (no hash or
        timestamp, or not a form), `bad_signature` or `stale_timestamp`. A callback is retried with a new
        timestamp and hash: deduplicate by (`transaction_id`, `status`).
        """
        try:
            found = cls._fields(fields)
        except ValueError as exc:
            raise SignatureVerificationError(f"not a urlencoded form: {exc}", reason="malformed_header") from None
        unknown = sorted(set(found) - cls.FIELDS)
        if unknown:
            raise SignatureVerificationError(
                f"unknown field {unknown[0][:40]!r}: ToffeePay does not send it", reason="unknown_field"
            )
        for key, value in found.items():
            if "&" in value or "=" in value:
                raise SignatureVerificationError(
                    f"field {key!r} holds a raw '&' or '=', which ToffeePay never sends", reason="malformed_value"
                )
        given = found.get("hash", "").lower()
        if not given:
            raise SignatureVerificationError("the callback has no hash field", reason="malformed_header")
        stamp = found.get("timestamp", "")
        if not (stamp.isascii() and stamp.isdigit()):
            raise SignatureVerificationError(
                "the callback has no timestamp field (unix seconds)", reason="malformed_header"
            )
        matched = False
        for s in _secrets(secret):
            matched |= hmac.compare_digest(cls.compute_hash(found, s).encode(), given.encode())
        if not matched:
            raise SignatureVerificationError("hash does not match the callback's fields", reason="bad_signature")
        if tolerance is not None and abs(time.time() - int(stamp)) > tolerance:
            raise SignatureVerificationError(
                f"timestamp {stamp} is more than {tolerance} s from now (replayed or clock skew)",
                reason="stale_timestamp",
            )
        return found
