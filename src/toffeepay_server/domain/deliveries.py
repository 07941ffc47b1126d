"""A webhook delivery: one event on its way to one endpoint, and its lifecycle."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from .errors import DomainError, Reason


class DeliveryStatus(StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    """Due at `next_attempt_at`, or held while its endpoint is disabled; the only state that moves."""
    SUCCEEDED = "succeeded"
    """The endpoint answered 2xx: final."""
    FAILED = "failed"
    """Retries ran out, or its endpoint was deleted while it waited: final (ResendEvent makes a new one)."""


TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    # A failed attempt with a retry left stays pending (pending -> pending).
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED}),
    DeliveryStatus.SUCCEEDED: frozenset(),
    DeliveryStatus.FAILED: frozenset(),
}


def after_attempt(current: DeliveryStatus, *, succeeded: bool, next_attempt_at: datetime | None) -> DeliveryStatus:
    """The status after one attempt: succeeded, pending again while a retry is scheduled, else failed."""
    if succeeded:
        target = DeliveryStatus.SUCCEEDED
    else:
        target = DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.FAILED
    if target not in TRANSITIONS[current]:
        raise DomainError(Reason.INTERNAL, f"a delivery that is {current.value} is not attempted")
    return target
