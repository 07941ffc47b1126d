"""Legacy callbacks (the Callback Validation format): a payment outcome as a signed form.

The hash covers the fields as `k=v` joined by `&`, values not URL-encoded, so no value may
hold a raw `&` or `=`: otherwise one genuine hash would verify another split of the same
string (a FAILED callback re-read as PAID). Inside `custom_parameters` the JSON escapes
`\\u0026` and `\\u003d` stand for them (the JSON keeps its value); in any other value they are
percent-encoded (`%26`, `%3D`). `timestamp` (unix seconds of the delivery attempt) is hashed
too, so a receiver can refuse a replayed callback.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from ..domain import events
from ..domain.payments import FailureCode
from .signing import legacy_hash


def legacy_status(event: dict[str, Any]) -> str:
    match event["event"]:
        case events.PAYMENT_SUCCEEDED:
            return "PAID"
        case events.PAYMENT_FAILED if event["data"].get("failure_code") == FailureCode.PARTIAL_PAYMENT.value:
            return "PARTIAL"
        case events.PAYMENT_FAILED:
            return "FAILED"
        case events.SESSION_CANCELLED:
            return "CANCELLED"
        case events.SESSION_EXPIRED:
            return "EXPIRED"
        case events.REFUND_SUCCEEDED:
            return "REFUNDED"
    raise ValueError(f"{event['event']} has no legacy callback")


def custom_parameters(metadata: dict[str, str]) -> str:
    """The metadata as compact JSON with sorted keys, `&` and `=` written as JSON escapes."""
    text = json.dumps(metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    # Both characters can only occur inside JSON strings here, where the escape is the same value.
    return text.replace("&", "\\u0026").replace("=", "\\u003d")


def plain_value(value: str) -> str:
    """A value with `&` and `=` percent-encoded, so the hashed string splits one way only."""
    return value.replace("&", "%26").replace("=", "%3D")


def form_fields(event: dict[str, Any], site_id: str, timestamp: int) -> dict[str, str]:
    """The callback's fields for a delivery attempt at `timestamp` (unix seconds), without its hash."""
    data = event["data"]
    status = legacy_status(event)
    if status == "REFUNDED":
        # One callback per refund (the refund id), so a second partial refund is not taken for a repeat.
        transaction_id, amount, currency = data["refund_id"], data["payment_amount"], data["currency"]
        paid = data["amount"]
    elif event["event"].startswith("payment."):
        transaction_id, amount, currency = data["payment_id"], data["amount"], data["currency"]
        paid = {"PAID": amount, "PARTIAL": data.get("amount_received") or 0}.get(status, 0)
    else:
        transaction_id, amount, currency = data["session_id"], data["item"]["price"], data["item"]["currency"]
        paid = 0
    return {
        "transaction_id": transaction_id,
        "status": status,
        "amount": str(amount),
        "paid_amount": str(paid),
        "currency": currency,
        "site_id": plain_value(site_id),
        "game_id": plain_value(data["game_id"]),
        "user_id": plain_value(data["user_id"]),
        "transaction_token": data["session_id"],
        "custom_parameters": custom_parameters(data.get("metadata") or {}),
        "timestamp": str(timestamp),
    }


def form_body(event: dict[str, Any], site_id: str, secret: str, timestamp: int) -> bytes:
    """The urlencoded POST body of one delivery attempt, `hash` last."""
    fields = form_fields(event, site_id, timestamp)
    fields["hash"] = legacy_hash(fields, secret)
    return urlencode(fields).encode()
