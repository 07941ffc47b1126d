"""`toffeepay trigger <event>`: a real sandbox flow, through the API, that emits the event."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from toffeepay import ToffeePay
from toffeepay.types import ItemParams, SandboxOutcome

from ..domain import events

# The sandbox outcome of the payment each payment-bearing event needs.
_PAYMENT_OUTCOME: dict[str, SandboxOutcome] = {
    events.PAYMENT_CREATED: "succeeded",
    events.PAYMENT_SUCCEEDED: "succeeded",
    events.SESSION_PAID: "succeeded",
    events.DISPUTE_CREATED: "succeeded",
    # A paid session left unfulfilled: the event follows once the grace period has passed.
    events.SESSION_FULFILLMENT_OVERDUE: "succeeded",
    events.PAYMENT_FAILED: "insufficient_funds",
    events.SESSION_FAILED: "insufficient_funds",
    events.REFUND_CREATED: "succeeded",
    events.REFUND_SUCCEEDED: "succeeded",
    events.REFUND_FAILED: "succeeded",
}
# The sandbox outcome of the refund each refund event needs.
_REFUND_OUTCOME = {
    events.REFUND_CREATED: "succeeded",
    events.REFUND_SUCCEEDED: "succeeded",
    events.REFUND_FAILED: "failed",
}
# How long to wait for the sandbox to settle a refund (it does so a moment later).
SETTLE_TIMEOUT = 30.0
ITEM: ItemParams = {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
USER_ID = "toffeepay_cli"


@dataclass
class Triggered:
    """What the flow made; `events` are the ids of the requested event it emitted."""

    event: str
    session_id: str
    status: str = "pending"
    payment_id: str | None = None
    dispute_id: str | None = None
    refund_id: str | None = None
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(client: ToffeePay, event: str, game_id: str) -> Triggered:
    """Create a session and take it down the path that emits `event`."""
    if event not in events.SESSION_EVENT_TYPES:
        raise ValueError(f"unknown event {event!r}; one of: {', '.join(events.SESSION_EVENT_TYPES)}")
    created = client.sessions.create(game_id=game_id, user_id=USER_ID, item=ITEM, metadata={"trigger": event})
    done = Triggered(event, created.id)
    if event == events.SESSION_CANCELLED:
        client.sessions.cancel(created.id)
    elif event == events.SESSION_EXPIRED:
        client.sandbox.expire_session(created.id)
    elif outcome := _PAYMENT_OUTCOME.get(event):
        done.payment_id = client.sandbox.pay_session(created.id, outcome=outcome).id
        if event == events.DISPUTE_CREATED:
            done.dispute_id = client.sandbox.create_dispute(done.payment_id, reason="fraudulent").id
        elif refund_outcome := _REFUND_OUTCOME.get(event):
            refund = client.sandbox.create_refund(done.payment_id, outcome=refund_outcome)
            done.refund_id = refund.id
            if event != events.REFUND_CREATED:
                _wait_settled(client, refund.id)
    done.status = client.sessions.status(created.id).status
    done.events = [
        e.id
        for e in client.webhooks.events.list(types=[event], limit=50)
        if e.data is not None and e.data.to_python().get("session_id") == created.id
    ]
    return done


def _wait_settled(client: ToffeePay, refund_id: str) -> None:
    """Wait until the sandbox settled the refund (its event is then in the outbox)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while client.refunds.get(refund_id).status == "pending":
        if time.monotonic() > deadline:
            raise TimeoutError(f"refund {refund_id} is still pending after {SETTLE_TIMEOUT:.0f} s")
        time.sleep(0.1)
