"""The session: its lifecycle and the rules for creating one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from . import money
from .errors import DomainError, Reason
from .images import check_image
from .text import check_text
from .urls import check_return_url

DEFAULT_LIFETIME = timedelta(minutes=30)
MIN_LIFETIME = timedelta(minutes=2)
MAX_LIFETIME = timedelta(hours=24)
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_USER_ID = 255
MAX_TITLE = 200
GAME_ID = re.compile(r"[a-z0-9_-]{1,64}")


class SessionStatus(StrEnum):
    """Where a session stands; TRANSITIONS below is the only rule for moving it."""

    PENDING = "pending"
    """Waiting for the player (possibly with its one payment processing): the only state that moves."""
    PAID = "paid"
    """Its payment succeeded: final (fulfilment and refunds are recorded beside the status)."""
    FAILED = "failed"
    """Its payment failed: final."""
    CANCELLED = "cancelled"
    """The player or the game cancelled it before paying: final."""
    EXPIRED = "expired"
    """Reached expires_at with no payment under way: final."""


# The whole lifecycle: pending is the only state that moves, all others are final.
TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.PENDING: frozenset(
        {SessionStatus.PAID, SessionStatus.FAILED, SessionStatus.CANCELLED, SessionStatus.EXPIRED}
    ),
    SessionStatus.PAID: frozenset(),
    SessionStatus.FAILED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
    SessionStatus.EXPIRED: frozenset(),
}

# The timestamp a transition sets, by target status.
TRANSITION_TIMESTAMP = {
    SessionStatus.PAID: "paid_at",
    SessionStatus.FAILED: "failed_at",
    SessionStatus.CANCELLED: "cancelled_at",
    SessionStatus.EXPIRED: "expired_at",
}


def is_lapsed(status: SessionStatus, payment_id: str | None, expires_at: datetime, now: datetime) -> bool:
    """Pending, past expires_at and with no payment under way: expired for every reader."""
    return status is SessionStatus.PENDING and payment_id is None and now >= expires_at


def seen_status(status: SessionStatus, payment_id: str | None, expires_at: datetime, now: datetime) -> SessionStatus:
    """The status a reader sees: a lapsed session reads as expired at once."""
    return SessionStatus.EXPIRED if is_lapsed(status, payment_id, expires_at, now) else status


@dataclass(frozen=True, slots=True)
class Item:
    title: str
    price: int
    currency: str


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    game_id: str
    mode: str
    user_id: str
    item: Item
    status: SessionStatus
    return_url: str | None
    metadata: dict[str, str]
    expires_at: datetime
    created_at: datetime
    payment_id: str | None = None
    paid_at: datetime | None = None
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None
    expired_at: datetime | None = None
    # Set by the game (FulfillSession) once it granted the purchase; see domain/fulfilment.py.
    fulfilled_at: datetime | None = None
    # When `session.fulfillment_overdue` was recorded, so it is recorded once.
    fulfillment_overdue_at: datetime | None = None
    event_sequence: int = 0
    image: str | None = field(default=None, repr=False)

    def is_lapsed(self, now: datetime) -> bool:
        """Pending, past expires_at and with no payment under way: expired for every reader."""
        return is_lapsed(self.status, self.payment_id, self.expires_at, now)

    def as_seen(self, now: datetime) -> Session:
        """The session as a reader sees it: lapsed sessions read as expired at once."""
        if self.is_lapsed(now):
            return replace(self, status=SessionStatus.EXPIRED, expired_at=self.expires_at)
        return self

    def can_move_to(self, target: SessionStatus) -> bool:
        """What the transition table allows from this status (the one rule for every move)."""
        return target in TRANSITIONS[self.status]

    def transition(self, target: SessionStatus, at: datetime) -> Session:
        if not self.can_move_to(target):
            raise DomainError(Reason.SESSION_NOT_PENDING, f"session is {self.status.value}, not pending")
        stamp: dict[str, Any] = {TRANSITION_TIMESTAMP[target]: at}
        return replace(self, status=target, event_sequence=self.event_sequence + 1, **stamp)

    def start_payment(self, payment_id: str, now: datetime) -> Session:
        """Take the session's one payment; it stays pending while the payment is processing.

        A session takes a payment exactly when it could be cancelled, so the checks are shared.
        """
        self.check_cancellable(now)
        return replace(self, payment_id=payment_id, event_sequence=self.event_sequence + 1)

    def counted(self) -> Session:
        """The session after one more event about it that does not change its status."""
        return replace(self, event_sequence=self.event_sequence + 1)

    def check_cancellable(self, now: datetime) -> None:
        if self.is_lapsed(now) or self.status is SessionStatus.EXPIRED:
            raise DomainError(Reason.SESSION_EXPIRED, "session has expired")
        if not self.can_move_to(SessionStatus.CANCELLED):
            raise DomainError(Reason.SESSION_NOT_PENDING, f"session is {self.status.value}, not pending")
        if self.payment_id is not None:
            raise DomainError(Reason.PAYMENT_IN_PROGRESS, "a payment for this session is being processed")


@dataclass(frozen=True, slots=True)
class NewSession:
    """A validated CreateSession request."""

    game_id: str
    user_id: str
    item: Item
    image: str | None
    return_url: str | None
    metadata: dict[str, str]
    expires_at: datetime


def _require(value: str, name: str, max_len: int) -> str:
    if not value:
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} is required")
    if len(value) > max_len:
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} is longer than {max_len} characters")
    return check_text(value, name)


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_KEYS:
        raise DomainError(Reason.INVALID_METADATA, f"metadata has more than {MAX_METADATA_KEYS} keys")
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY:
            raise DomainError(
                Reason.INVALID_METADATA, f"metadata key {key[:50]!r} must be 1..{MAX_METADATA_KEY} characters"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise DomainError(
                Reason.INVALID_METADATA,
                f"metadata value of {key!r} is longer than {MAX_METADATA_VALUE} characters",
            )
        check_text(key, f"metadata key {key[:50]!r}", Reason.INVALID_METADATA)
        check_text(value, f"metadata value of {key[:50]!r}", Reason.INVALID_METADATA)
    return dict(metadata)


def check_expires_at(expires_at: datetime | None, now: datetime) -> datetime:
    if expires_at is None:
        return now + DEFAULT_LIFETIME
    lifetime = expires_at - now
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise DomainError(Reason.INVALID_EXPIRES_AT, "expires_at must be between 2 minutes and 24 hours from now")
    return expires_at


def new_session(
    *,
    game_id: str,
    user_id: str,
    title: str,
    price: int,
    currency: str,
    image: str | None,
    return_url: str | None,
    metadata: dict[str, str],
    expires_at: datetime | None,
    live: bool,
    now: datetime,
) -> NewSession:
    """Validate a CreateSession request in the order of reasons docs/api.md gives."""
    _require(user_id, "user_id", MAX_USER_ID)
    _require(title, "item.title", MAX_TITLE)
    money.check_currency(currency)
    money.check_price(price)
    return NewSession(
        game_id=game_id,
        user_id=user_id,
        item=Item(title=title, price=price, currency=currency),
        image=check_image(image) if image else None,
        return_url=check_return_url(return_url, live=live) if return_url else None,
        metadata=check_metadata(metadata),
        expires_at=check_expires_at(expires_at, now),
    )
