"""The Stripe processor's pure mapping: cards, amounts, statuses, errors and events."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from toffeepay_server.config import Secret, Settings
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.payments import FailureCode, Method, Outcome, Payment, PaymentStatus
from toffeepay_server.processors.stripe import transformers as t

TODAY = date(2026, 11, 15)


def payment(amount: int = 499, currency: str = "USD") -> Payment:
    return Payment(
        id="pay_1",
        session_id="sess_1",
        game_id="g",
        mode="live",
        user_id="player_42",
        status=PaymentStatus.PROCESSING,
        amount=amount,
        currency=currency,
        method=Method.CARD,
        details="50 Gold Coins",
        processor="stripe",
        created_at=datetime(2026, 11, 15, tzinfo=UTC),
    )


def test_a_card_is_read_from_the_page_fields() -> None:
    card = t.card({"number": "4242 4242-4242 4242", "expiry": " 7 / 31 ", "cvc": "123"}, TODAY)
    assert (card.number, card.exp_month, card.exp_year, card.cvc) == ("4242424242424242", 7, 2031, "123")
    assert t.card({"number": "378282246310005", "expiry": "11/2026", "cvc": "1234"}, TODAY).exp_year == 2026
    assert "4242424242424242" not in repr(card) and "4242" in repr(card)


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        ({"number": "4242 4242 4242 4241", "expiry": "12/34", "cvc": "123"}, "card number"),  # fails the Luhn check
        ({"number": "4242", "expiry": "12/34", "cvc": "123"}, "card number"),
        ({"expiry": "12/34", "cvc": "123"}, "card number"),
        ({"number": "4242424242424242", "expiry": "13/34", "cvc": "123"}, "expiry"),
        ({"number": "4242424242424242", "expiry": "1234", "cvc": "123"}, "expiry"),
        ({"number": "4242424242424242", "expiry": "10/26", "cvc": "123"}, "expired"),
        ({"number": "4242424242424242", "expiry": "12/34", "cvc": "12"}, "CVC"),
        ({"number": "4242424242424242", "expiry": "12/34"}, "CVC"),
    ],
)
def test_bad_card_fields_are_refused_before_any_payment(fields: dict[str, str], hint: str) -> None:
    with pytest.raises(DomainError) as refused:
        t.card(fields, TODAY)
    assert refused.value.reason is Reason.INVALID_ARGUMENT and hint in refused.value.detail


def test_only_cards_are_taken() -> None:
    t.check_method(Method.CARD)
    for method, name in ((Method.APPLE_PAY, "Apple Pay"), (Method.GOOGLE_PAY, "Google Pay")):
        with pytest.raises(DomainError) as refused:
            t.check_method(method)
        assert f"{name} is not available" in refused.value.detail


def test_amounts_follow_stripe_special_cases() -> None:
    assert t.stripe_amount(499, "USD") == 499 and t.stripe_amount(500, "JPY") == 500
    assert t.stripe_amount(500, "ISK") == 50_000 and t.from_stripe_amount(50_000, "isk") == 500
    t.check_amount(1230, "KWD")
    for amount, currency in ((1234, "KWD"), (1_000_000, "UGX")):
        with pytest.raises(DomainError) as refused:
            t.check_amount(amount, currency)
        assert refused.value.reason is Reason.INVALID_PRICE


def test_the_intent_carries_the_session_and_one_key_per_operation() -> None:
    params = t.payment_intent_params(payment(500, "ISK"), "pm_1")
    assert params == {
        "amount": 50_000,
        "currency": "isk",
        "payment_method": "pm_1",
        "payment_method_types": ["card"],
        "metadata": {"session_id": "sess_1", "payment_id": "pay_1", "game_id": "g", "user_id": "player_42"},
    }
    assert t.idempotency_key("pay_1", "confirm") != t.idempotency_key("pay_1", "payment_intent")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": "card_declined", "decline_code": "insufficient_funds"}, FailureCode.INSUFFICIENT_FUNDS),
        ({"code": "card_declined", "decline_code": "generic_decline"}, FailureCode.CARD_DECLINED),
        ({"code": "expired_card"}, FailureCode.CARD_DECLINED),
        ({"code": "payment_intent_authentication_failure"}, FailureCode.CARD_DECLINED),
        ({"code": "processing_error"}, FailureCode.PROCESSOR_ERROR),
        ({}, FailureCode.PROCESSOR_ERROR),
    ],
)
def test_stripe_errors_become_failure_codes(error: dict[str, str], code: FailureCode) -> None:
    assert t.failure({**error, "message": "Your card was declined."}) == Outcome(code, "Your card was declined.")


def test_intent_statuses() -> None:
    assert t.intent_outcome({"status": "succeeded", "amount": 499, "amount_received": 499}) == Outcome()
    assert t.intent_outcome(
        {"status": "succeeded", "amount": 500, "amount_received": 300, "currency": "isk"}
    ) == Outcome(FailureCode.PARTIAL_PAYMENT, amount_received=3)
    assert t.intent_outcome({"status": "processing"}) is None
    assert t.intent_outcome({"status": "requires_action"}) == Outcome(
        FailureCode.CARD_DECLINED, t.AUTHENTICATION_NEEDED
    )
    failed = {"status": "requires_payment_method", "last_payment_error": {"code": "card_declined", "message": "No."}}
    assert t.intent_outcome(failed) == Outcome(FailureCode.CARD_DECLINED, "No.")
    assert t.intent_outcome({"status": "canceled"}).failure_code is FailureCode.PROCESSOR_ERROR  # type: ignore[union-attr]
    for unknown in ("requires_capture", "requires_confirmation", "teleported", None):
        with pytest.raises(t.Unexpected):
            t.intent_outcome({"status": unknown})


def test_an_intent_must_be_for_the_payment() -> None:
    t.check_intent({"id": "pi_1", "amount": 499, "currency": "usd"}, payment())
    for wrong in ({"amount": 498, "currency": "usd"}, {"amount": 499, "currency": "eur"}, {}):
        with pytest.raises(t.Unexpected):
            t.check_intent({"id": "pi_1", **wrong}, payment())


def test_notifications() -> None:
    intent = {"id": "pi_1", "status": "succeeded", "metadata": {"payment_id": "pay_1"}}
    changed = t.notification({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": intent}})
    assert changed == t.IntentChanged(intent, "pi_1", "pay_1")
    assert t.notification({"id": "evt_2", "type": "charge.succeeded", "data": {"object": {"id": "ch_1"}}}) is None
    opened = t.notification(
        {
            "id": "evt_3",
            "type": "charge.dispute.created",
            "data": {
                "object": {
                    "id": "dp_1",
                    "amount": 50_000,
                    "currency": "isk",
                    "reason": "fraudulent",
                    "payment_intent": "pi_1",
                    "metadata": {"user_id": "player_42"},
                }
            },
        }
    )
    assert opened == t.DisputeOpened("dp_1", "pi_1", "fraudulent", 500, "ISK", None, None, None, "player_42")
    for broken in (
        {"type": "payment_intent.succeeded", "data": {}},
        {"type": "payment_intent.succeeded", "data": {"object": {"id": "pi_" + "x" * 300}}},
        {"type": "charge.dispute.created", "data": {"object": {"id": "dp_2", "currency": "usd"}}},
        {"type": "charge.dispute.created", "data": {"object": {"id": "dp_3", "currency": "usd", "amount": 2**40}}},
    ):
        with pytest.raises(t.Unexpected):
            t.notification(broken)
    # Hints longer than ToffeePay keeps are dropped, not truncated.
    long = t.notification(
        {
            "type": "charge.dispute.created",
            "data": {
                "object": {
                    "id": "dp_4",
                    "amount": 1,
                    "currency": "usd",
                    "metadata": {"game_id": "g" * 65, "user_id": "u" * 255},
                }
            },
        }
    )
    assert isinstance(long, t.DisputeOpened) and (long.game_id, long.user_id) == (None, "u" * 255)


def test_stripe_secrets_are_never_printed() -> None:
    settings = Settings.from_env(
        stripe_api_key=Secret("sk_live_very_secret"), stripe_webhook_secret=Secret("whsec_hush")
    )
    assert (
        "very_secret" not in repr(settings)
        and "hush" not in repr(settings)
        and "hush" not in str(settings.stripe_webhook_secret)
    )
    assert settings.stripe_api_key is not None and settings.stripe_api_key.reveal() == "sk_live_very_secret"


def test_the_reconcilers_placeholder_intent_is_the_same_intent_without_a_card() -> None:
    full = t.payment_intent_params(payment(), "pm_1")
    placeholder = t.payment_intent_params(payment(), None)
    assert full == {**placeholder, "payment_method": "pm_1"} and "payment_method" not in placeholder
    assert placeholder["metadata"]["payment_id"] == "pay_1"
    assert t.search_query("pay_1") == "metadata['payment_id']:'pay_1'"


@pytest.mark.parametrize(
    ("intent", "never"),
    [
        ({"status": "requires_confirmation"}, True),
        ({"status": "requires_payment_method", "last_payment_error": None}, True),
        ({"status": "requires_payment_method", "last_payment_error": {"code": "card_declined"}}, False),
        ({"status": "requires_action"}, False),
        ({"status": "processing"}, False),
        ({"status": "succeeded"}, False),
        ({"status": "canceled"}, False),
    ],
)
def test_an_intent_never_confirmed_charged_nothing(intent: dict[str, object], never: bool) -> None:
    assert t.never_confirmed(intent) is never
