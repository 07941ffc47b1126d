"""The processor interface: start a payment or a refund, report its outcome now or later.

An adapter answers `start` (and `refund`) with the processor's own id of the payment (the
refund) and, when the processor decides at once, the outcome. Otherwise the outcome arrives
later, through the processor's notification, which calls `services.payments.settle_payment`
(`services.refunds.settle_refund`) as well.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..domain.errors import DomainError, Reason
from ..domain.payments import Method, Outcome, Payment
from ..domain.refunds import Refund, RefundOutcome


@dataclass(frozen=True, slots=True)
class Instructions:
    """What the player (or a sandbox caller) chose: a method and the processor's own fields."""

    method: Method
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Started:
    """A processor's answer to a new payment."""

    processor_ref: str | None
    # None: the outcome comes later, in a notification.
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class RefundStarted:
    """A processor's answer to a new refund."""

    processor_ref: str | None
    # None: the outcome comes later, in a notification.
    outcome: RefundOutcome | None = None


class ProcessorError(Exception):
    """The processor could not take the payment (unreachable, refused the request)."""


class Processor(ABC):
    name: str
    # The mode of the sessions this processor pays (sandbox and live never mix).
    mode: str
    # Whether the payment page offers Apple Pay and Google Pay (else they show as unavailable).
    wallets: bool = True

    @abstractmethod
    def check(self, instructions: Instructions) -> None:
        """Refuse bad input (`invalid_argument`) before any payment exists."""

    def check_price(self, amount: int, currency: str) -> None:
        """Refuse, when a session is created, a price this processor cannot charge (`invalid_price`)."""

    @abstractmethod
    async def start(self, payment: Payment, instructions: Instructions) -> Started:
        """Ask the processor to take `payment`; raise ProcessorError when it cannot."""

    def check_refund(self, options: Mapping[str, str]) -> None:
        """Refuse bad refund options (`invalid_argument`) before any refund exists."""

    @abstractmethod
    async def refund(self, payment: Payment, refund: Refund, options: Mapping[str, str]) -> RefundStarted:
        """Ask the processor to give `refund.amount` of `payment` back; raise ProcessorError when it cannot.

        `options` are the processor's own (the sandbox's chosen outcome); others ignore them.
        """

    @abstractmethod
    async def reconcile(self, payment: Payment) -> Started:
        """Ask the processor what became of `payment`, still `processing` long after it started.

        The process that started it may have died before the processor had it, or before its
        answer was recorded. The answer's outcome settles the payment (a payment the processor
        never received fails, and the processor is made unable to take it later); None means
        the processor is still working on it: ask again later. Raise ProcessorError when the
        processor cannot be asked now.
        """

    async def close(self) -> None:
        """Release the processor's connections when the process stops."""


class Processors:
    """The processor that pays each mode's sessions."""

    def __init__(self, *processors: Processor) -> None:
        self._by_mode = {p.mode: p for p in processors}

    def for_mode(self, mode: str) -> Processor:
        processor = self._by_mode.get(mode)
        if processor is None:
            raise DomainError(Reason.PROCESSOR_UNAVAILABLE, f"no payment processor is configured for {mode} payments")
        return processor

    def for_payment(self, payment: Payment) -> Processor:
        """The processor that took `payment`, which alone can give its money back."""
        processor = self._by_mode.get(payment.mode)
        if processor is None or processor.name != payment.processor:
            raise DomainError(
                Reason.PROCESSOR_UNAVAILABLE,
                f"the {payment.processor} processor that took this payment is not configured",
            )
        return processor

    def all(self) -> list[Processor]:
        return list(self._by_mode.values())

    def wallets(self, mode: str) -> bool:
        """Whether the mode's payment page takes Apple Pay and Google Pay."""
        processor = self._by_mode.get(mode)
        return processor is not None and processor.wallets

    async def close(self) -> None:
        for processor in self._by_mode.values():
            await processor.close()
