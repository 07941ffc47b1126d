"""The sandbox processor's pure mapping: test cards, chosen outcomes, its references."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.payments import FailureCode, Method, Outcome
from toffeepay_server.processors.sandbox import transformers as t

TODAY = date(2030, 6, 15)


@pytest.mark.parametrize(
    ("number", "choice"),
    [
        ("4242 4242 4242 4242", t.SUCCEEDED),
        ("4242424242424242", t.SUCCEEDED),
        ("4000-0000-0000-9995", t.INSUFFICIENT_FUNDS),
        ("4000 0000 0000 0002", t.CARD_DECLINED),
        ("4000 0000 0000 0119", t.PROCESSOR_ERROR),
    ],
)
def test_test_cards(number: str, choice: str) -> None:
    assert t.card_choice(number, "06/30", "123", TODAY) == choice


@pytest.mark.parametrize(
    ("number", "expiry", "cvc", "field"),
    [
        ("4111 1111 1111 1111", "12/34", "123", "card number"),
        ("", "12/34", "123", "card number"),
        ("4242 4242 4242 4242", "05/30", "123", "expiry: the card has expired"),
        ("4242 4242 4242 4242", "00/34", "123", "expiry: use MM/YY"),
        ("4242 4242 4242 4242", "1234", "123", "expiry: use MM/YY"),
        ("4242 4242 4242 4242", "12/34", "12a", "CVC"),
        ("4242 4242 4242 4242", "12/34", "12345", "CVC"),
    ],
)
def test_bad_card_details_are_refused(number: str, expiry: str, cvc: str, field: str) -> None:
    with pytest.raises(DomainError) as refused:
        t.card_choice(number, expiry, cvc, TODAY)
    assert refused.value.reason is Reason.INVALID_ARGUMENT and refused.value.detail.startswith(field)


def test_expiry_forms() -> None:
    for expiry in ("6/30", "06 / 30", "06/2030", " 12/99 "):
        assert t.card_choice("4242424242424242", expiry, "1234", TODAY) == t.SUCCEEDED


def test_chosen_outcomes() -> None:
    assert t.choice(Method.APPLE_PAY, {}, TODAY) == t.SUCCEEDED
    assert t.choice(Method.CARD, {"outcome": "partial"}, TODAY) == t.PARTIAL
    assert (
        t.choice(Method.CARD, {"number": "4000000000000002", "expiry": "1/31", "cvc": "000"}, TODAY) == t.CARD_DECLINED
    )
    with pytest.raises(DomainError):
        t.choice(Method.GOOGLE_PAY, {"outcome": "lucky"}, TODAY)


def test_outcomes() -> None:
    assert t.outcome(t.SUCCEEDED, 499) == Outcome() and Outcome().succeeded
    assert t.outcome(t.INSUFFICIENT_FUNDS, 499) == Outcome(FailureCode.INSUFFICIENT_FUNDS)
    assert t.outcome(t.PARTIAL, 499) == Outcome(FailureCode.PARTIAL_PAYMENT, amount_received=249)


def test_references_round_trip() -> None:
    due = datetime(2030, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    ref = t.reference("ab12", t.CARD_DECLINED, due)
    assert ref == f"sbx.ab12.card_declined.{int(due.timestamp() * 1000)}"
    assert t.planned(ref) == t.Planned(t.CARD_DECLINED, due)
    for other in ("pi_123", "sbx.ab.nope.1", "sbx.ab.succeeded.x", "sbx.a.b"):
        assert t.planned(other) is None
