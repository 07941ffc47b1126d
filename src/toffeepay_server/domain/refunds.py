"""The refund: money given back for a succeeded payment, in full or in part, and its lifecycle.

A refund is created `pending` and settled once by its processor (`succeeded` or `failed`).
Pending and succeeded refunds both count as taken, so the refunds of a payment never add
up to more than was paid, however many are asked for at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from .errors import DomainError, Reason
from .payments import Payment, PaymentStatus


class RefundStatus(StrEnum):
    """Where a refund stands; TRANSITIONS below is the only rule for moving it."""

    PENDING = "pending"
    """Sent to the processor; its amount already counts as taken: the only state that moves."""
    SUCCEEDED = "succeeded"
    """The money went back to the player: final."""
    FAILED = "failed"
    """The processor could not give it back; its amount is free to refund again: final."""


class RefundReason(StrEnum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    OTHER = "other"


class RefundFailureCode(StrEnum):
    # The card's bank refused the money back (card closed, lost or expired).
    DECLINED = "declined"
    # The studio's processor balance could not cover it.
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROCESSOR_ERROR = "processor_error"


TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}

# Statuses whose amount is taken from what is left to refund.
TAKEN = frozenset({RefundStatus.PENDING, RefundStatus.SUCCEEDED})


def parse_reason(value: str | None) -> RefundReason:
    """A reason named on the wire; unset or empty means `requested_by_customer`."""
    try:
        return RefundReason(value or RefundReason.REQUESTED_BY_CUSTOMER.value)
    except ValueError:
        allowed = ", ".join(r.value for r in RefundReason)
        raise DomainError(Reason.INVALID_ARGUMENT, f"reason must be one of {allowed}") from None


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """How a refund ended, as its processor reports it; no failure code means it succeeded."""

    failure_code: RefundFailureCode | None = None

    @property
    def succeeded(self) -> bool:
        return self.failure_code is None


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_id: str
    session_id: str
    game_id: str
    mode: str
    user_id: str
    amount: int
    currency: str
    reason: RefundReason
    status: RefundStatus
    processor: str
    created_at: datetime
    processor_ref: str | None = None
    failure_code: RefundFailureCode | None = None
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """No transition leaves this status (the table says so): a later outcome changes nothing."""
        return not TRANSITIONS[self.status]

    def settle(self, outcome: RefundOutcome, at: datetime) -> Refund:
        if outcome.failure_code is None:
            self._check(RefundStatus.SUCCEEDED)
            return replace(self, status=RefundStatus.SUCCEEDED, succeeded_at=at)
        self._check(RefundStatus.FAILED)
        return replace(self, status=RefundStatus.FAILED, failed_at=at, failure_code=outcome.failure_code)

    def _check(self, target: RefundStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise DomainError(Reason.INVALID_ARGUMENT, f"refund {self.id} is already {self.status.value}")


def left_to_refund(payment: Payment, taken: int) -> int:
    """What may still be refunded of `payment` when `taken` is already pending or succeeded.

    Only a succeeded payment can be refunded (`payment_not_refundable`).
    """
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise DomainError(
            Reason.PAYMENT_NOT_REFUNDABLE,
            f"payment {payment.id} is {payment.status.value}; only a succeeded payment can be refunded",
        )
    return max(payment.amount - taken, 0)


def refund_amount(payment: Payment, taken: int, requested: int | None) -> int:
    """The amount of a new refund: `requested`, or by default all that is left.

    It must be 1..what is left (`invalid_refund_amount`).
    """
    left = left_to_refund(payment, taken)
    if left == 0:
        raise DomainError(
            Reason.INVALID_REFUND_AMOUNT,
            f"nothing is left to refund: {taken} of {payment.amount} is refunded or being refunded",
        )
    if requested is None:
        return left
    if not 1 <= requested <= left:
        raise DomainError(
            Reason.INVALID_REFUND_AMOUNT,
            f"amount must be 1..{left} (what is left to refund of {payment.amount} {payment.currency})",
        )
    return requested


def after_refund(payment: Payment, refund: Refund) -> Payment:
    """The payment once `refund` succeeded: its `amount_refunded`, and `refunded_at` when all is back."""
    refunded = payment.amount_refunded + refund.amount
    if refunded > payment.amount:
        raise DomainError(Reason.INTERNAL, f"refunds of {payment.id} would exceed its amount")
    done = refund.succeeded_at if refunded == payment.amount else None
    return replace(payment, amount_refunded=refunded, refunded_at=done or payment.refunded_at)
