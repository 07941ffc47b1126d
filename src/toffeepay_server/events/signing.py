"""Webhook signatures: ToffeePay's header (docs/api.md, Events) and the Standard Webhooks headers.

The key of `X-ToffeePay-Signature` (and of the legacy `hash`) is the whole secret string,
`whsec_...`, as UTF-8 bytes: what a studio copies from the dashboard is what it feeds to
HMAC, as the Getting Started guide's `HMAC_SHA256(your_webhook_secret, signed_payload)` says. The Standard
Webhooks signature is keyed, as that specification says, with the base64-decoded part after
`whsec_`. One signature per valid secret, so receivers on either side of a rotation verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from ..domain.webhooks import SECRET_PREFIX


def _hmac(key: bytes, message: bytes) -> hmac.HMAC:
    return hmac.new(key, message, hashlib.sha256)


def toffeepay_signature(body: bytes, timestamp: int, secrets: Sequence[str]) -> str:
    """`t=<unix>,v1=<hex>[,v1=<hex>...]`: HMAC-SHA256(secret, f"{t}." + body) per secret."""
    signed = f"{timestamp}.".encode() + body
    return ",".join([f"t={timestamp}", *(f"v1={_hmac(s.encode(), signed).hexdigest()}" for s in secrets)])


def standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def standard_signature(message_id: str, body: bytes, timestamp: int, secrets: Sequence[str]) -> str:
    """`v1,<base64>[ v1,<base64>...]` over f"{id}.{t}." + body (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(_hmac(standard_key(s), signed).digest()).decode() for s in secrets)


def json_headers(event_id: str, event_type: str, body: bytes, timestamp: int, secrets: Sequence[str]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-ToffeePay-Signature": toffeepay_signature(body, timestamp, secrets),
        "X-ToffeePay-Event-Id": event_id,
        "X-ToffeePay-Event": event_type,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(event_id, body, timestamp, secrets),
    }


def legacy_hash(fields: Mapping[str, str], secret: str) -> str:
    """Hex HMAC-SHA256 of the fields as `k=v` sorted by key, joined by `&`, values as they are."""
    message = "&".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")
    return _hmac(secret.encode(), message.encode()).hexdigest()
