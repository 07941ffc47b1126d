"""The refund rules without I/O: the state machine, the amount rule, the processors' mappings, the callback."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
import toffeepay
from hypothesis import given
from hypothesis import strategies as st

from toffeepay_server.domain import events
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.payments import Method, Payment, PaymentStatus
from toffeepay_server.domain.refunds import (
    TRANSITIONS,
    Refund,
    RefundFailureCode,
    RefundOutcome,
    RefundReason,
    RefundStatus,
    after_refund,
    left_to_refund,
    parse_reason,
    refund_amount,
)
from toffeepay_server.domain.sessions import Item, Session, SessionStatus
from toffeepay_server.domain.webhooks import LEGACY_EVENT_TYPES, new_secret
from toffeepay_server.events import legacy
from toffeepay_server.processors.sandbox import transformers as sandbox
from toffeepay_server.processors.stripe import transformers as stripe

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def payment(amount: int = 499, status: PaymentStatus = PaymentStatus.SUCCEEDED, **changes: object) -> Payment:
    made = Payment(
        id="pay_1",
        session_id="sess_1",
        game_id="space_shooter",
        mode="sandbox",
        user_id="player_42",
        status=status,
        amount=amount,
        currency="USD",
        method=Method.CARD,
        details="Coins",
        processor="sandbox",
        created_at=NOW,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def refund(amount: int = 499, status: RefundStatus = RefundStatus.PENDING) -> Refund:
    return Refund(
        id="re_1",
        payment_id="pay_1",
        session_id="sess_1",
        game_id="space_shooter",
        mode="sandbox",
        user_id="player_42",
        amount=amount,
        currency="USD",
        reason=RefundReason.DUPLICATE,
        status=status,
        processor="sandbox",
        created_at=NOW,
    )


# The state machine


def test_a_pending_refund_settles_once_either_way() -> None:
    assert TRANSITIONS[RefundStatus.PENDING] == {RefundStatus.SUCCEEDED, RefundStatus.FAILED}
    assert TRANSITIONS[RefundStatus.SUCCEEDED] == TRANSITIONS[RefundStatus.FAILED] == frozenset()
    later = NOW + timedelta(seconds=1)
    done = refund().settle(RefundOutcome(), later)
    assert (done.status, done.succeeded_at, done.failed_at, done.failure_code) == (
        RefundStatus.SUCCEEDED,
        later,
        None,
        None,
    )
    failed = refund().settle(RefundOutcome(RefundFailureCode.DECLINED), later)
    assert (failed.status, failed.failed_at, failed.failure_code) == (
        RefundStatus.FAILED,
        later,
        RefundFailureCode.DECLINED,
    )
    for final in (done, failed):
        for outcome in (RefundOutcome(), RefundOutcome(RefundFailureCode.PROCESSOR_ERROR)):
            with pytest.raises(DomainError):
                final.settle(outcome, later)


def test_reasons() -> None:
    assert parse_reason(None) is parse_reason("") is RefundReason.REQUESTED_BY_CUSTOMER
    assert [parse_reason(r.value) for r in RefundReason] == list(RefundReason)
    with pytest.raises(DomainError) as refused:
        parse_reason("changed_mind")
    assert refused.value.reason is Reason.INVALID_ARGUMENT


# The amount rule


@pytest.mark.parametrize("status", [PaymentStatus.PROCESSING, PaymentStatus.FAILED])
def test_only_a_succeeded_payment_is_refundable(status: PaymentStatus) -> None:
    with pytest.raises(DomainError) as refused:
        refund_amount(payment(status=status), 0, None)
    assert refused.value.reason is Reason.PAYMENT_NOT_REFUNDABLE


@given(
    amount=st.integers(1, 99_999_999),
    taken_share=st.floats(0, 1),
    requested=st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
)
def test_a_refund_takes_1_to_what_is_left(amount: int, taken_share: float, requested: int | None) -> None:
    taken = int(amount * taken_share)
    left = amount - taken
    try:
        granted = refund_amount(payment(amount), taken, requested)
    except DomainError as exc:
        assert exc.reason is Reason.INVALID_REFUND_AMOUNT
        assert left == 0 or (requested is not None and not 1 <= requested <= left)
        return
    assert granted == (left if requested is None else requested)
    assert 1 <= granted <= left and taken + granted <= amount


def test_what_is_left_counts_pending_and_succeeded_refunds() -> None:
    assert left_to_refund(payment(499), 0) == 499
    assert left_to_refund(payment(499), 200) == 299
    assert refund_amount(payment(499), 200, 299) == 299
    with pytest.raises(DomainError, match=r"1\.\.299"):
        refund_amount(payment(499), 200, 300)
    with pytest.raises(DomainError, match="nothing is left"):
        refund_amount(payment(499), 499, None)


def test_a_succeeded_refund_adds_to_the_payment() -> None:
    later = NOW + timedelta(minutes=1)
    part = after_refund(payment(499), refund(200).settle(RefundOutcome(), later))
    assert (part.amount_refunded, part.refunded_at) == (200, None)
    rest = after_refund(part, refund(299).settle(RefundOutcome(), later))
    assert (rest.amount_refunded, rest.refunded_at) == (499, later)
    with pytest.raises(DomainError):
        after_refund(rest, refund(1).settle(RefundOutcome(), later))


# Events and the legacy callback


def session() -> Session:
    return Session(
        id="sess_1",
        game_id="space_shooter",
        mode="sandbox",
        user_id="player_42",
        item=Item("Coins", 499, "USD"),
        status=SessionStatus.PAID,
        return_url=None,
        metadata={"order": "A&B=1"},
        expires_at=NOW,
        created_at=NOW,
        event_sequence=6,
    )


def test_refund_event_data_carries_the_refund_and_who_it_concerns() -> None:
    done = refund(150).settle(RefundOutcome(), NOW)
    data = events.refund_data(done, payment(), session(), "pending")
    assert data == {
        "id": "re_1",
        "refund_id": "re_1",
        "payment_id": "pay_1",
        "session_id": "sess_1",
        "status": "succeeded",
        "amount": 150,
        "currency": "USD",
        "reason": "duplicate",
        "game_id": "space_shooter",
        "user_id": "player_42",
        "payment_amount": 499,
        "metadata": {"order": "A&B=1"},
        "sequence": 6,
        "previous_status": "pending",
        "created_at": "2030-01-01T12:00:00Z",
        "succeeded_at": "2030-01-01T12:00:00Z",
    }
    assert events.REFUND_SUCCEEDED in LEGACY_EVENT_TYPES
    assert events.REFUND_CREATED not in LEGACY_EVENT_TYPES and events.REFUND_FAILED not in LEGACY_EVENT_TYPES


def test_a_succeeded_refund_is_a_refunded_callback_for_what_was_given_back() -> None:
    done = refund(150).settle(RefundOutcome(), NOW)
    body = {"event": events.REFUND_SUCCEEDED, "data": events.refund_data(done, payment(), session(), "pending")}
    secret = new_secret()
    fields = dict(parse_qsl(legacy.form_body(body, "site_7", secret, int(time.time())).decode(), strict_parsing=True))
    assert {k: fields[k] for k in ("transaction_id", "status", "amount", "paid_amount", "currency")} == {
        "transaction_id": "re_1",
        "status": "REFUNDED",
        "amount": "499",
        "paid_amount": "150",
        "currency": "USD",
    }
    assert (fields["transaction_token"], fields["game_id"], fields["user_id"]) == (
        "sess_1",
        "space_shooter",
        "player_42",
    )
    assert toffeepay.LegacyCallback.verify(fields, secret) == fields
    with pytest.raises(ValueError):
        legacy.form_fields({"event": events.REFUND_FAILED, "data": body["data"]}, "s", int(time.time()))


# The processors' pure mappings


def test_sandbox_refund_plans_round_trip_and_stay_apart_from_payments() -> None:
    assert sandbox.refund_choice("") == "succeeded" and sandbox.refund_choice("failed") == "failed"
    for bad in ("insufficient_funds", "partial", "nope"):
        with pytest.raises(DomainError):
            sandbox.refund_choice(bad)
    due = NOW + timedelta(seconds=1)
    ref = sandbox.refund_reference("abc", "failed", due)
    plan = sandbox.planned_refund(ref)
    assert plan is not None and (plan.choice, plan.due) == ("failed", due)
    assert sandbox.planned(ref) is None
    assert sandbox.planned_refund(sandbox.reference("abc", "succeeded", due)) is None
    assert sandbox.refund_outcome("succeeded") == RefundOutcome()
    assert sandbox.refund_outcome("failed") == RefundOutcome(RefundFailureCode.DECLINED)


@pytest.mark.parametrize(
    ("obj", "outcome"),
    [
        ({"status": "succeeded"}, RefundOutcome()),
        ({"status": "pending"}, None),
        ({"status": "requires_action"}, None),
        ({"status": "failed", "failure_reason": "expired_or_canceled_card"}, RefundOutcome(RefundFailureCode.DECLINED)),
        ({"status": "failed", "failure_reason": "lost_or_stolen_card"}, RefundOutcome(RefundFailureCode.DECLINED)),
        (
            {"status": "failed", "failure_reason": "insufficient_funds"},
            RefundOutcome(RefundFailureCode.INSUFFICIENT_FUNDS),
        ),
        ({"status": "failed", "failure_reason": "unknown"}, RefundOutcome(RefundFailureCode.PROCESSOR_ERROR)),
        ({"status": "canceled"}, RefundOutcome(RefundFailureCode.PROCESSOR_ERROR)),
    ],
)
def test_stripe_refund_statuses(obj: dict[str, str], outcome: RefundOutcome | None) -> None:
    assert stripe.refund_outcome(obj) == outcome


def test_stripe_refunds_unknown_to_the_mapping_are_errors() -> None:
    with pytest.raises(stripe.Unexpected):
        stripe.refund_outcome({"status": "teleported"})
    stripe.check_refund({"id": "re_x", "amount": 150, "currency": "usd"}, refund(150))
    with pytest.raises(stripe.Unexpected):
        stripe.check_refund({"id": "re_x", "amount": 151, "currency": "usd"}, refund(150))


def test_stripe_refund_requests_and_notifications() -> None:
    params = stripe.refund_params(payment(processor_ref="pi_1"), refund(150))
    assert (params["payment_intent"], params["amount"]) == ("pi_1", 150)
    assert params["metadata"]["refund_id"] == "re_1" and params["metadata"]["reason"] == "duplicate"
    assert stripe.idempotency_key("re_1", "refund") == "toffeepay:re_1:refund"
    obj = {"id": "re_stripe", "status": "succeeded", "metadata": {"refund_id": "re_1"}}
    for kind in ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"):
        notice = stripe.notification({"id": "evt_1", "type": kind, "data": {"object": obj}})
        assert notice == stripe.RefundsChanged((obj,))
    assert stripe.refund_hint(obj) == "re_1"
    charge = {"id": "ch_1", "refunds": {"data": [obj, {"no": "id"}]}}
    assert stripe.notification({"type": "charge.refunded", "data": {"object": charge}}) == stripe.RefundsChanged((obj,))
    bare = {"id": "ch_1"}
    assert stripe.notification({"type": "charge.refunded", "data": {"object": bare}}) == stripe.RefundsChanged(())
