"""The payment: one attempt to pay a session, and its lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from .errors import DomainError, Reason


class PaymentStatus(StrEnum):
    """Where a payment stands; TRANSITIONS below is the only rule for moving it."""

    PROCESSING = "processing"
    """Sent to its processor, waiting for the outcome: the only state that moves."""
    SUCCEEDED = "succeeded"
    """The money was taken: final (refunds change amount_refunded, not the status)."""
    FAILED = "failed"
    """The processor refused or took only part: final."""


class Method(StrEnum):
    APPLE_PAY = "apple_pay"
    GOOGLE_PAY = "google_pay"
    CARD = "card"


class FailureCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_DECLINED = "card_declined"
    PARTIAL_PAYMENT = "partial_payment"
    PROCESSOR_ERROR = "processor_error"


def parse_method(value: str) -> Method:
    """A method named on the wire; empty means card."""
    try:
        return Method(value or Method.CARD.value)
    except ValueError:
        allowed = ", ".join(m.value for m in Method)
        raise DomainError(Reason.INVALID_ARGUMENT, f"method must be one of {allowed}") from None


# What the player reads when a payment fails (the processor may say more).
FAILURE_MESSAGES = {
    FailureCode.INSUFFICIENT_FUNDS: "The card has insufficient funds.",
    FailureCode.CARD_DECLINED: "The card was declined.",
    FailureCode.PARTIAL_PAYMENT: "Only part of the amount was paid.",
    FailureCode.PROCESSOR_ERROR: "The payment processor could not complete the payment.",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a payment ended, as its processor reports it (at once or in a later notification)."""

    # None when the payment succeeded.
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    amount_received: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.failure_code is None


TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.SUCCEEDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    session_id: str
    game_id: str
    mode: str
    user_id: str
    status: PaymentStatus
    amount: int
    currency: str
    method: Method
    details: str
    processor: str
    created_at: datetime
    processor_ref: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    amount_received: int | None = None
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None
    # What succeeded refunds gave back, and when the last of the amount was.
    amount_refunded: int = 0
    refunded_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """No transition leaves this status (the table says so): a later outcome changes nothing."""
        return not TRANSITIONS[self.status]

    def succeed(self, at: datetime) -> Payment:
        self._check(PaymentStatus.SUCCEEDED)
        return replace(self, status=PaymentStatus.SUCCEEDED, succeeded_at=at)

    def fail(self, at: datetime, code: FailureCode, message: str, amount_received: int | None = None) -> Payment:
        self._check(PaymentStatus.FAILED)
        return replace(
            self,
            status=PaymentStatus.FAILED,
            failed_at=at,
            failure_code=code,
            failure_message=message,
            amount_received=amount_received,
        )

    def settle(self, outcome: Outcome, at: datetime) -> Payment:
        if outcome.failure_code is None:
            return self.succeed(at)
        message = outcome.failure_message or FAILURE_MESSAGES[outcome.failure_code]
        return self.fail(at, outcome.failure_code, message, outcome.amount_received)

    def _check(self, target: PaymentStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise DomainError(Reason.SESSION_NOT_PENDING, f"payment is already {self.status.value}")


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    mode: str
    reason: str
    amount: int
    currency: str
    processor: str
    processor_dispute_id: str
    created_at: datetime
    game_id: str | None = None
    payment_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None


MAX_DISPUTE_REASON = 500


def dispute_reason(reason: str) -> str:
    """A processor's raw reason; sandbox callers may leave it out."""
    if len(reason) > MAX_DISPUTE_REASON:
        raise DomainError(Reason.INVALID_ARGUMENT, f"reason is longer than {MAX_DISPUTE_REASON} characters")
    return reason or "fraudulent"


def hint_applies(*, session_mode: str, session_game_id: str, mode: str, game_id: str | None) -> bool:
    """Whether a dispute's session hint may be trusted: the session is of the dispute's mode and,
    when the hint names a game too, of that game. A hint across modes or games is ignored."""
    return session_mode == mode and game_id in (None, session_game_id)


def disputed_amount(payment: Payment, amount: int | None) -> int:
    """The amount a dispute may claim of a payment: by default all of it."""
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise DomainError(
            Reason.INVALID_ARGUMENT,
            f"payment {payment.id} is {payment.status.value}; only a succeeded payment can be disputed",
        )
    if amount is None:
        return payment.amount
    if not 1 <= amount <= payment.amount:
        raise DomainError(Reason.INVALID_ARGUMENT, f"amount must be 1..{payment.amount} (the payment's amount)")
    return amount
