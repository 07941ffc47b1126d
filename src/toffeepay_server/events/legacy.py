"""Legacy callbacks (CONTRACT section 10, seed 003): a payment outcome as a signed form."""

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
    raise ValueError(f"{event['event']} has no legacy callback")


def form_fields(event: dict[str, Any], site_id: str) -> dict[str, str]:
    """The callback's fields, without its hash."""
    data = event["data"]
    status = legacy_status(event)
    if event["event"].startswith("payment."):
        transaction_id, amount, currency = data["payment_id"], data["amount"], data["currency"]
    else:
        transaction_id, amount, currency = data["session_id"], data["item"]["price"], data["item"]["currency"]
    paid = {"PAID": amount, "PARTIAL": data.get("amount_received") or 0}.get(status, 0)
    return {
        "transaction_id": transaction_id,
        "status": status,
        "amount": str(amount),
        "paid_amount": str(paid),
        "currency": currency,
        "site_id": site_id,
        "game_id": data["game_id"],
        "user_id": data["user_id"],
        "transaction_token": data["session_id"],
        "custom_parameters": json.dumps(
            data.get("metadata") or {}, separators=(",", ":"), sort_keys=True, ensure_ascii=False
        ),
    }


def form_body(event: dict[str, Any], site_id: str, secret: str) -> bytes:
    """The urlencoded POST body, `hash` last."""
    fields = form_fields(event, site_id)
    fields["hash"] = legacy_hash(fields, secret)
    return urlencode(fields).encode()
