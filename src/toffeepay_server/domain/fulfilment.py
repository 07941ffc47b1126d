"""Fulfilment: the game says it granted a paid session's purchase, and a paid session it has
not granted within the grace period is reported once as overdue."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from .errors import DomainError, Reason
from .sessions import Session, SessionStatus

DEFAULT_GRACE = timedelta(minutes=10)


def fulfil(session: Session, at: datetime) -> Session:
    """The session marked as granted; a session already fulfilled stays as it was (idempotent)."""
    if session.status is not SessionStatus.PAID:
        raise DomainError(Reason.SESSION_NOT_PAID, f"session is {session.status.value}, not paid")
    if session.fulfilled_at is not None:
        return session
    return replace(session, fulfilled_at=at)


def overdue_since(grace: timedelta, now: datetime) -> datetime:
    """Sessions paid at or before this instant and not fulfilled are overdue."""
    return now - grace


def is_overdue(session: Session, grace: timedelta, now: datetime) -> bool:
    """Paid, not fulfilled, past the grace period, and not yet reported."""
    return (
        session.status is SessionStatus.PAID
        and session.fulfilled_at is None
        and session.fulfillment_overdue_at is None
        and session.paid_at is not None
        and session.paid_at <= overdue_since(grace, now)
    )


def mark_overdue(session: Session, at: datetime) -> Session:
    """The session once its `session.fulfillment_overdue` event is recorded (one more event about it)."""
    return replace(session, fulfillment_overdue_at=at, event_sequence=session.event_sequence + 1)
