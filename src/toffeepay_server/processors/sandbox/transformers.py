"""Pure mapping for the sandbox processor: test cards and chosen outcomes to outcomes.

Test cards follow the usual convention: 4242 4242 4242 4242 succeeds, 4000 0000 0000 9995
is declined for insufficient funds, 4000 0000 0000 0002 is declined, 4000 0000 0000 0119
is a processor error. Any future expiry and any 3 or 4 digit CVC are accepted.

The sandbox keeps its state in its own id of the payment (the processor reference):
`sbx.<token>.<choice>.<due unix ms>`, so a restart loses no settlement. A refund's is
`sbxre.<token>.<succeeded|failed>.<due unix ms>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ...domain.errors import DomainError, Reason
from ...domain.payments import FailureCode, Method, Outcome
from ...domain.refunds import RefundFailureCode, RefundOutcome

SUCCEEDED = "succeeded"
INSUFFICIENT_FUNDS = "insufficient_funds"
CARD_DECLINED = "card_declined"
PARTIAL = "partial"
PROCESSOR_ERROR = "processor_error"
CHOICES = (SUCCEEDED, INSUFFICIENT_FUNDS, CARD_DECLINED, PARTIAL, PROCESSOR_ERROR)

TEST_CARDS = {
    "4242424242424242": SUCCEEDED,
    "4000000000009995": INSUFFICIENT_FUNDS,
    "4000000000000002": CARD_DECLINED,
    "4000000000000119": PROCESSOR_ERROR,
}
_EXPIRY = re.compile(r"(\d{1,2})\s*/\s*(\d{2}|\d{4})")
_CVC = re.compile(r"\d{3,4}")
_REF_PREFIX = "sbx"
_REFUND_PREFIX = "sbxre"
REFUND_FAILED = "failed"
REFUND_CHOICES = (SUCCEEDED, REFUND_FAILED)


def _refuse(message: str) -> DomainError:
    return DomainError(Reason.INVALID_ARGUMENT, message)


def card_choice(number: str, expiry: str, cvc: str, today: date) -> str:
    """The outcome a test card stands for; anything else is refused with a hint."""
    digits = re.sub(r"[\s-]", "", number)
    if digits not in TEST_CARDS:
        raise _refuse("card number: use a sandbox test card such as 4242 4242 4242 4242")
    match = _EXPIRY.fullmatch(expiry.strip())
    if match is None or not 1 <= int(match.group(1)) <= 12:
        raise _refuse("expiry: use MM/YY, e.g. 12/34")
    year = int(match.group(2))
    year += 2000 if year < 100 else 0
    if (year, int(match.group(1))) < (today.year, today.month):
        raise _refuse("expiry: the card has expired")
    if not _CVC.fullmatch(cvc.strip()):
        raise _refuse("CVC: use 3 or 4 digits")
    return TEST_CARDS[digits]


def outcome_choice(value: str) -> str:
    """A chosen outcome (wallet buttons, SandboxService.PaySession); empty means success."""
    if not value:
        return SUCCEEDED
    if value not in CHOICES:
        raise _refuse(f"outcome must be one of {', '.join(CHOICES)}")
    return value


def choice(method: Method, fields: Mapping[str, str], today: date) -> str:
    """Card details when the card form sent them, else the chosen outcome."""
    if method is Method.CARD and "number" in fields:
        return card_choice(fields["number"], fields.get("expiry", ""), fields.get("cvc", ""), today)
    return outcome_choice(fields.get("outcome", ""))


def outcome(choice_: str, amount: int) -> Outcome:
    """What the sandbox reports for a choice; a partial payment receives half, rounded down."""
    if choice_ == SUCCEEDED:
        return Outcome()
    if choice_ == PARTIAL:
        return Outcome(FailureCode.PARTIAL_PAYMENT, amount_received=amount // 2)
    return Outcome(FailureCode(choice_))


@dataclass(frozen=True, slots=True)
class Planned:
    choice: str
    due: datetime


def reference(token: str, choice_: str, due: datetime) -> str:
    return f"{_REF_PREFIX}.{token}.{choice_}.{int(due.timestamp() * 1000)}"


def planned(processor_ref: str) -> Planned | None:
    """What a reference made by `reference` plans; None for anything else."""
    parts = processor_ref.split(".")
    if len(parts) != 4 or parts[0] != _REF_PREFIX or parts[2] not in CHOICES or not parts[3].isdigit():
        return None
    return Planned(parts[2], datetime.fromtimestamp(int(parts[3]) / 1000, UTC))


def refund_choice(value: str) -> str:
    """A refund's chosen outcome (SandboxService.CreateRefund); empty means success."""
    if not value:
        return SUCCEEDED
    if value not in REFUND_CHOICES:
        raise _refuse(f"outcome must be one of {', '.join(REFUND_CHOICES)}")
    return value


def refund_outcome(choice_: str) -> RefundOutcome:
    """What the sandbox reports for a refund: a forced failure reads as the card's bank declining it."""
    return RefundOutcome() if choice_ == SUCCEEDED else RefundOutcome(RefundFailureCode.DECLINED)


def refund_reference(token: str, choice_: str, due: datetime) -> str:
    return f"{_REFUND_PREFIX}.{token}.{choice_}.{int(due.timestamp() * 1000)}"


def planned_refund(processor_ref: str) -> Planned | None:
    """What a reference made by `refund_reference` plans; None for anything else."""
    parts = processor_ref.split(".")
    if len(parts) != 4 or parts[0] != _REFUND_PREFIX or parts[2] not in REFUND_CHOICES or not parts[3].isdigit():
        return None
    return Planned(parts[2], datetime.fromtimestamp(int(parts[3]) / 1000, UTC))
