"""The payment: one attempt to pay a session, and its lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from .errors import DomainError, Reason


class PaymentStatus(str, Enum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Method(str, Enum):
    APPLE_PAY = "apple_pay"
    GOOGLE_PAY = "google_pay"
    CARD = "card"


class FailureCode(str, Enum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_DECLINED = "card_declined"
    PARTIAL_PAYMENT = "partial_payment"
    PROCESSOR_ERROR = "processor_error"


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

    def succeed(self, at: datetime) -> Payment:
        self._check(PaymentStatus.SUCCEEDED)
        return replace(self, status=PaymentStatus.SUCCEEDED, succeeded_at=at)

    def fail(self, at: datetime, code: FailureCode, message: str, amount_received: int | None = None) -> Payment:
        self._check(PaymentStatus.FAILED)
        return replace(
            self, status=PaymentStatus.FAILED, failed_at=at, failure_code=code,
            failure_message=message, amount_received=amount_received,
        )

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
