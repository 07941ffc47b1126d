"""Webhook events: their types and the JSON body every receiver gets (docs/api.md, Events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SESSION_CREATED = "session.created"
SESSION_PAID = "session.paid"
SESSION_FAILED = "session.failed"
SESSION_EXPIRED = "session.expired"
SESSION_CANCELLED = "session.cancelled"
SESSION_FULFILLMENT_OVERDUE = "session.fulfillment_overdue"
PAYMENT_CREATED = "payment.created"
PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_FAILED = "payment.failed"
DISPUTE_CREATED = "dispute.created"
REFUND_CREATED = "refund.created"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
# About the game's own endpoints, sent to its other endpoints of that mode.
ENDPOINT_FAILING = "endpoint.failing"
ENDPOINT_DISABLED = "endpoint.disabled"
ENDPOINT_EVENTS = frozenset({ENDPOINT_FAILING, ENDPOINT_DISABLED})
# SendTestEvent's event: signed and sent at once, never stored.
PING = "ping"

EVENT_TYPES = (
    SESSION_CREATED,
    SESSION_PAID,
    SESSION_FAILED,
    SESSION_EXPIRED,
    SESSION_CANCELLED,
    SESSION_FULFILLMENT_OVERDUE,
    PAYMENT_CREATED,
    PAYMENT_SUCCEEDED,
    PAYMENT_FAILED,
    DISPUTE_CREATED,
    REFUND_CREATED,
    REFUND_SUCCEEDED,
    REFUND_FAILED,
    ENDPOINT_FAILING,
    ENDPOINT_DISABLED,
)

# Events about a session (its own, its payment's, its disputes'): all but the endpoint ones.
SESSION_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t not in ENDPOINT_EVENTS)


def rfc3339(value: datetime) -> str:
    """UTC, second precision unless there is a fraction: 2023-06-01T12:00:00Z."""
    # isoformat() leaves out a zero fraction, as the rule above does.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True, slots=True)
class Event:
    """An outbox row to be: it commits in the same transaction as the change it reports."""

    id: str
    type: str
    game_id: str
    mode: str
    session_id: str | None
    sequence: int | None
    created_at: datetime
    data: dict[str, Any]
    # The session this event is about, as the Getting Started guide's sample shows it at the
    # top level (session_id, user_id, game_id, status, item): see `session_summary`.
    summary: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.type,
            "timestamp": rfc3339(self.created_at),
            "mode": self.mode,
            **(self.summary or {}),
            "data": self.data,
        }


def session_summary(session: Any) -> dict[str, Any]:
    """The top-level fields of every event about a session; `status` is the session's after the event."""
    return {
        "session_id": session.id,
        "user_id": session.user_id,
        "game_id": session.game_id,
        "status": session.status.value,
        "item": {"title": session.item.title, "price": session.item.price, "currency": session.item.currency},
    }


def _timestamps(obj: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {name: rfc3339(value) for name in names if (value := getattr(obj, name)) is not None}


def session_data(session: Any, previous_status: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": session.id,
        "status": session.status.value,
        "game_id": session.game_id,
        "user_id": session.user_id,
        "item": {
            "title": session.item.title,
            "price": session.item.price,
            "currency": session.item.currency,
        },
        "metadata": dict(session.metadata),
        "sequence": session.event_sequence,
    }
    if session.payment_id:
        data["payment_id"] = session.payment_id
    if session.return_url:
        data["return_url"] = session.return_url
    if previous_status:
        data["previous_status"] = previous_status
    data.update(
        _timestamps(
            session,
            ("created_at", "expires_at", "paid_at", "failed_at", "cancelled_at", "expired_at", "fulfilled_at"),
        )
    )
    return data


def payment_data(payment: Any, session: Any, previous_status: str | None) -> dict[str, Any]:
    """`payment.*` data; carries the session's sequence and metadata so receivers need not ask."""
    data: dict[str, Any] = {
        "payment_id": payment.id,
        "session_id": payment.session_id,
        "status": payment.status.value,
        "amount": payment.amount,
        "currency": payment.currency,
        "method": payment.method.value,
        "details": payment.details,
        "game_id": payment.game_id,
        "user_id": payment.user_id,
        "metadata": dict(session.metadata),
        "sequence": session.event_sequence,
    }
    if previous_status:
        data["previous_status"] = previous_status
    if payment.failure_code:
        data["failure_code"] = payment.failure_code.value
        data["failure_message"] = payment.failure_message
    if payment.amount_received is not None:
        data["amount_received"] = payment.amount_received
    data.update(_timestamps(payment, ("created_at", "succeeded_at", "failed_at")))
    return data


def dispute_data(dispute: Any, sequence: int | None, fulfilled_at: datetime | None = None) -> dict[str, Any]:
    """`dispute.created` data; `fulfilled_at` (when the game granted the session) tells what to claw back."""
    data: dict[str, Any] = {
        "dispute_id": dispute.id,
        "reason": dispute.reason,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "created_at": rfc3339(dispute.created_at),
    }
    for name in ("payment_id", "session_id", "user_id", "game_id"):
        if (value := getattr(dispute, name)) is not None:
            data[name] = value
    if sequence is not None:
        data["sequence"] = sequence
    if fulfilled_at is not None:
        data["fulfilled_at"] = rfc3339(fulfilled_at)
    return data


def refund_data(refund: Any, payment: Any, session: Any, previous_status: str | None) -> dict[str, Any]:
    """`refund.*` data: the refund's fields, who it concerns, and the session's sequence.

    `payment_amount` (what the payment was for) lets a legacy callback say what was refunded of what.
    """
    data: dict[str, Any] = {
        "id": refund.id,
        "refund_id": refund.id,
        "payment_id": refund.payment_id,
        "session_id": refund.session_id,
        "status": refund.status.value,
        "amount": refund.amount,
        "currency": refund.currency,
        "reason": refund.reason.value,
        "game_id": refund.game_id,
        "user_id": refund.user_id,
        "payment_amount": payment.amount,
        "metadata": dict(session.metadata),
        "sequence": session.event_sequence,
    }
    if previous_status:
        data["previous_status"] = previous_status
    if refund.failure_code:
        data["failure_code"] = refund.failure_code.value
    data.update(_timestamps(refund, ("created_at", "succeeded_at", "failed_at")))
    return data


def endpoint_data(endpoint: Any) -> dict[str, Any]:
    """`endpoint.failing` and `endpoint.disabled` data."""
    data: dict[str, Any] = {"endpoint_id": endpoint.id, "url": endpoint.url}
    if endpoint.failing_since is not None:
        data["failing_since"] = rfc3339(endpoint.failing_since)
    return data
