"""Every transition table and validator of the domain, at its edges, in milliseconds.

Each lifecycle is checked pair by pair against the table written out here, so a changed
entry in the code's table (or a check elsewhere that shadows it) fails a test at once.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise, product

import pytest

from toffeepay_server.domain import ids, money
from toffeepay_server.domain.deliveries import TRANSITIONS as DELIVERY_TRANSITIONS
from toffeepay_server.domain.deliveries import DeliveryStatus, after_attempt
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.idempotency import TRANSITIONS as IDEMPOTENCY_TRANSITIONS
from toffeepay_server.domain.idempotency import IdempotencyState, replayable
from toffeepay_server.domain.images import MAX_IMAGE_BYTES, MAX_IMAGE_URL, check_image
from toffeepay_server.domain.payments import (
    TRANSITIONS as PAYMENT_TRANSITIONS,
)
from toffeepay_server.domain.payments import (
    FailureCode,
    Method,
    Outcome,
    Payment,
    PaymentStatus,
    dispute_reason,
    disputed_amount,
    hint_applies,
    parse_method,
)
from toffeepay_server.domain.refunds import (
    TRANSITIONS as REFUND_TRANSITIONS,
)
from toffeepay_server.domain.refunds import (
    Refund,
    RefundFailureCode,
    RefundOutcome,
    RefundReason,
    RefundStatus,
    after_refund,
    parse_reason,
    refund_amount,
)
from toffeepay_server.domain.sessions import (
    MAX_METADATA_KEY,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE,
    MAX_TITLE,
    MAX_USER_ID,
    Item,
    Session,
    SessionStatus,
    check_expires_at,
    check_metadata,
    new_session,
)
from toffeepay_server.domain.sessions import (
    TRANSITIONS as SESSION_TRANSITIONS,
)
from toffeepay_server.domain.text import check_text, has_control
from toffeepay_server.domain.urls import MAX_RETURN_URL, check_return_url

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da6364f8cf00000301010018dd8db00000000049454e44ae426082"
    )
).decode()


def refused(reason: Reason, call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    assert caught.value.reason is reason, caught.value.message
    return caught.value.detail


# --- Lifecycles: the whole table, pair by pair --------------------------------------------

SESSION_MOVES = {
    (SessionStatus.PENDING, SessionStatus.PAID),
    (SessionStatus.PENDING, SessionStatus.FAILED),
    (SessionStatus.PENDING, SessionStatus.CANCELLED),
    (SessionStatus.PENDING, SessionStatus.EXPIRED),
}
PAYMENT_MOVES = {(PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED), (PaymentStatus.PROCESSING, PaymentStatus.FAILED)}
REFUND_MOVES = {(RefundStatus.PENDING, RefundStatus.SUCCEEDED), (RefundStatus.PENDING, RefundStatus.FAILED)}


def session(status: SessionStatus = SessionStatus.PENDING, **changes: object) -> Session:
    base: dict[str, object] = dict(
        id="sess_x",
        game_id="g",
        mode="sandbox",
        user_id="u",
        item=Item("Gems", 499, "USD"),
        status=status,
        return_url=None,
        metadata={},
        expires_at=NOW + timedelta(minutes=30),
        created_at=NOW,
        event_sequence=1,
    )
    base.update(changes)
    return Session(**base)  # type: ignore[arg-type]


def payment(status: PaymentStatus = PaymentStatus.PROCESSING, **changes: object) -> Payment:
    base: dict[str, object] = dict(
        id="pay_x",
        session_id="sess_x",
        game_id="g",
        mode="sandbox",
        user_id="u",
        status=status,
        amount=499,
        currency="USD",
        method=Method.CARD,
        details="Visa 4242",
        processor="sandbox",
        created_at=NOW,
    )
    base.update(changes)
    return Payment(**base)  # type: ignore[arg-type]


def refund(status: RefundStatus = RefundStatus.PENDING, amount: int = 100) -> Refund:
    return Refund(
        id="re_x",
        payment_id="pay_x",
        session_id="sess_x",
        game_id="g",
        mode="sandbox",
        user_id="u",
        amount=amount,
        currency="USD",
        reason=RefundReason.REQUESTED_BY_CUSTOMER,
        status=status,
        processor="sandbox",
        created_at=NOW,
        succeeded_at=NOW if status is RefundStatus.SUCCEEDED else None,
    )


def test_the_lifecycle_tables_are_exactly_these() -> None:
    for table, moves in (
        (SESSION_TRANSITIONS, SESSION_MOVES),
        (PAYMENT_TRANSITIONS, PAYMENT_MOVES),
        (REFUND_TRANSITIONS, REFUND_MOVES),
    ):
        statuses = list(table)
        assert set(statuses) == set(type(statuses[0])), "every status has a row"
        assert {(a, b) for a in statuses for b in table[a]} == moves


@pytest.mark.parametrize(("start", "target"), list(product(SessionStatus, SessionStatus)))
def test_a_session_moves_only_as_the_table_says(start: SessionStatus, target: SessionStatus) -> None:
    if (start, target) in SESSION_MOVES:
        moved = session(start).transition(target, NOW)
        assert moved.status is target and moved.event_sequence == 2
        assert getattr(moved, f"{target.value}_at") == NOW
    else:
        refused(Reason.SESSION_NOT_PENDING, session(start).transition, target, NOW)


@pytest.mark.parametrize("start", list(PaymentStatus))
@pytest.mark.parametrize("outcome", [Outcome(), Outcome(FailureCode.CARD_DECLINED)])
def test_a_payment_settles_only_as_the_table_says(start: PaymentStatus, outcome: Outcome) -> None:
    target = PaymentStatus.SUCCEEDED if outcome.succeeded else PaymentStatus.FAILED
    before = payment(start)
    assert before.is_final is not any(a is start for a, _ in PAYMENT_MOVES)
    if (start, target) in PAYMENT_MOVES:
        after = before.settle(outcome, NOW)
        assert after.status is target
        assert (after.succeeded_at, after.failed_at) == ((NOW, None) if outcome.succeeded else (None, NOW))
    else:
        refused(Reason.SESSION_NOT_PENDING, before.settle, outcome, NOW)


def test_a_failed_payment_keeps_its_code_message_and_amount_received() -> None:
    failed = payment().settle(Outcome(FailureCode.PARTIAL_PAYMENT, None, 200), NOW)
    assert (failed.failure_code, failed.failure_message, failed.amount_received) == (
        FailureCode.PARTIAL_PAYMENT,
        "Only part of the amount was paid.",
        200,
    )
    told = payment().settle(Outcome(FailureCode.CARD_DECLINED, "Do not honour"), NOW)
    assert told.failure_message == "Do not honour"


@pytest.mark.parametrize("start", list(RefundStatus))
@pytest.mark.parametrize("outcome", [RefundOutcome(), RefundOutcome(RefundFailureCode.DECLINED)])
def test_a_refund_settles_only_as_the_table_says(start: RefundStatus, outcome: RefundOutcome) -> None:
    target = RefundStatus.SUCCEEDED if outcome.succeeded else RefundStatus.FAILED
    before = refund(start)
    assert before.is_final is not any(a is start for a, _ in REFUND_MOVES)
    if (start, target) in REFUND_MOVES:
        after = before.settle(outcome, NOW)
        assert after.status is target and after.failure_code is outcome.failure_code
    else:
        refused(Reason.INVALID_ARGUMENT, before.settle, outcome, NOW)


def test_a_session_takes_one_payment_only_while_it_could_be_cancelled() -> None:
    taken = session().start_payment("pay_x", NOW)
    assert taken.payment_id == "pay_x" and taken.status is SessionStatus.PENDING and taken.event_sequence == 2
    refused(Reason.PAYMENT_IN_PROGRESS, taken.start_payment, "pay_y", NOW)
    for status in SessionStatus:
        if status is SessionStatus.PENDING:
            continue
        expected = Reason.SESSION_EXPIRED if status is SessionStatus.EXPIRED else Reason.SESSION_NOT_PENDING
        refused(expected, session(status).start_payment, "pay_x", NOW)
    at_expiry = session(expires_at=NOW)
    assert at_expiry.is_lapsed(NOW) and not at_expiry.is_lapsed(NOW - timedelta(microseconds=1))
    refused(Reason.SESSION_EXPIRED, at_expiry.start_payment, "pay_x", NOW)


# --- Refund and dispute amounts -------------------------------------------------------------


def test_refund_amounts_stay_within_what_is_left() -> None:
    paid = payment(PaymentStatus.SUCCEEDED)
    assert refund_amount(paid, 0, None) == 499
    assert refund_amount(paid, 400, None) == 99
    assert refund_amount(paid, 0, 1) == 1 and refund_amount(paid, 99, 400) == 400
    refused(Reason.INVALID_REFUND_AMOUNT, refund_amount, paid, 99, 401)
    refused(Reason.INVALID_REFUND_AMOUNT, refund_amount, paid, 0, 0)
    refused(Reason.INVALID_REFUND_AMOUNT, refund_amount, paid, 499, None)
    for status in (PaymentStatus.PROCESSING, PaymentStatus.FAILED):
        refused(Reason.PAYMENT_NOT_REFUNDABLE, refund_amount, payment(status), 0, None)
    assert parse_reason(None) is parse_reason("") is RefundReason.REQUESTED_BY_CUSTOMER
    refused(Reason.INVALID_ARGUMENT, parse_reason, "bored")


def test_a_payment_is_refunded_when_all_of_it_is_back() -> None:
    paid = payment(PaymentStatus.SUCCEEDED)
    part = after_refund(paid, refund(RefundStatus.SUCCEEDED, 499 - 1))
    assert (part.amount_refunded, part.refunded_at) == (498, None)
    whole = after_refund(part, refund(RefundStatus.SUCCEEDED, 1))
    assert (whole.amount_refunded, whole.refunded_at) == (499, NOW)
    refused(Reason.INTERNAL, after_refund, whole, refund(RefundStatus.SUCCEEDED, 1))


def test_dispute_amounts_and_reasons() -> None:
    paid = payment(PaymentStatus.SUCCEEDED)
    assert disputed_amount(paid, None) == 499
    assert disputed_amount(paid, 1) == 1 and disputed_amount(paid, 499) == 499
    refused(Reason.INVALID_ARGUMENT, disputed_amount, paid, 0)
    refused(Reason.INVALID_ARGUMENT, disputed_amount, paid, 500)
    refused(Reason.INVALID_ARGUMENT, disputed_amount, payment(), None)
    assert dispute_reason("") == "fraudulent"
    assert dispute_reason("x" * 500) == "x" * 500
    refused(Reason.INVALID_ARGUMENT, dispute_reason, "x" * 501)


def test_a_dispute_hint_is_trusted_only_for_a_session_of_its_mode_and_game() -> None:
    assert hint_applies(session_mode="sandbox", session_game_id="g", mode="sandbox", game_id=None)
    assert hint_applies(session_mode="live", session_game_id="g", mode="live", game_id="g")
    assert not hint_applies(session_mode="sandbox", session_game_id="g", mode="live", game_id=None)
    assert not hint_applies(session_mode="live", session_game_id="g", mode="sandbox", game_id="g")
    assert not hint_applies(session_mode="live", session_game_id="g", mode="live", game_id="other")


def test_methods() -> None:
    assert parse_method("") is Method.CARD
    assert parse_method("apple_pay") is Method.APPLE_PAY
    refused(Reason.INVALID_ARGUMENT, parse_method, "cash")


# --- CreateSession validators --------------------------------------------------------------


def test_prices_are_whole_minor_units_within_bounds() -> None:
    assert money.check_price(1) == 1 and money.check_price(money.MAX_PRICE) == money.MAX_PRICE
    refused(Reason.INVALID_PRICE, money.check_price, 0)
    refused(Reason.INVALID_PRICE, money.check_price, -1)
    refused(Reason.INVALID_PRICE, money.check_price, money.MAX_PRICE + 1)
    assert money.check_currency("JPY") == "JPY"
    for code in ("usd", "DEM", "XXX", ""):
        refused(Reason.INVALID_CURRENCY, money.check_currency, code)
    assert money.to_major(-5, "USD") == "-0.05"


def test_metadata_bounds() -> None:
    at_limit = {f"k{n}": "v" * MAX_METADATA_VALUE for n in range(MAX_METADATA_KEYS)}
    assert check_metadata(at_limit) == at_limit
    assert check_metadata({"k" * MAX_METADATA_KEY: ""}) == {"k" * MAX_METADATA_KEY: ""}
    refused(Reason.INVALID_METADATA, check_metadata, {**at_limit, "one_more": "v"})
    refused(Reason.INVALID_METADATA, check_metadata, {"": "v"})
    refused(Reason.INVALID_METADATA, check_metadata, {"k" * (MAX_METADATA_KEY + 1): "v"})
    refused(Reason.INVALID_METADATA, check_metadata, {"k": "v" * (MAX_METADATA_VALUE + 1)})
    refused(Reason.INVALID_METADATA, check_metadata, {"k\n": "v"})
    refused(Reason.INVALID_METADATA, check_metadata, {"k": "v\x00"})


def test_expires_at_bounds() -> None:
    assert check_expires_at(None, NOW) == NOW + timedelta(minutes=30)
    for edge in (timedelta(minutes=2), timedelta(hours=24)):
        assert check_expires_at(NOW + edge, NOW) == NOW + edge
    for outside in (timedelta(minutes=2) - timedelta(seconds=1), timedelta(hours=24, seconds=1), -timedelta(hours=1)):
        refused(Reason.INVALID_EXPIRES_AT, check_expires_at, NOW + outside, NOW)


def create(**changes: object) -> object:
    request: dict[str, object] = dict(
        game_id="g",
        user_id="u",
        title="Gems",
        price=499,
        currency="USD",
        image=None,
        return_url=None,
        metadata={},
        expires_at=None,
        live=False,
        now=NOW,
    )
    request.update(changes)
    return new_session(**request)  # type: ignore[arg-type]


def test_create_session_checks_fields_in_the_documented_order() -> None:
    assert create(user_id="u" * MAX_USER_ID, title="t" * MAX_TITLE)
    refused(Reason.INVALID_ARGUMENT, create, user_id="")
    refused(Reason.INVALID_ARGUMENT, create, user_id="u" * (MAX_USER_ID + 1))
    refused(Reason.INVALID_ARGUMENT, create, title="")
    refused(Reason.INVALID_ARGUMENT, create, title="t" * (MAX_TITLE + 1))
    refused(Reason.INVALID_ARGUMENT, create, title="Gems\x7f")
    # The first failing rule wins: user_id, title, currency, price, image, return_url, metadata, expires_at.
    refused(Reason.INVALID_ARGUMENT, create, user_id="", currency="nope")
    refused(Reason.INVALID_CURRENCY, create, currency="nope", price=0)
    refused(Reason.INVALID_PRICE, create, price=0, image="ftp://x")
    refused(Reason.INVALID_IMAGE, create, image="ftp://x", return_url="javascript:alert(1)")
    refused(Reason.INVALID_RETURN_URL, create, return_url="javascript:alert(1)", metadata={"": ""})
    refused(Reason.INVALID_METADATA, create, metadata={"": ""}, expires_at=NOW)
    refused(Reason.INVALID_EXPIRES_AT, create, expires_at=NOW)


def test_images() -> None:
    assert check_image(f"data:image/png;base64,{PNG}")
    assert check_image(f"data:IMAGE/PNG;BASE64,{PNG}")
    assert check_image("https://cdn.example/gems.png")
    assert check_image("https://cdn.example/" + "a" * (MAX_IMAGE_URL - 20))
    for bad in (
        "http://cdn.example/gems.png",
        "https:///gems.png",
        "https://cdn.example/" + "a" * MAX_IMAGE_URL,
        f"data:image/png,{PNG}",
        f"data:image/png;base64{PNG}",
        f"data:image/gif;base64,{PNG}",
        f"data:image/jpeg;base64,{PNG}",
        "data:image/png;base64,not base64!",
        "data:image/png;base64," + base64.b64encode(b"not an image").decode(),
        "data:image/png;base64," + base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 1)).decode(),
        "https://cdn.\uff11.example/x.png",
    ):
        refused(Reason.INVALID_IMAGE, check_image, bad)


def test_return_urls() -> None:
    for good in ("mygame://done", "https://g.example/x", "http://localhost:3000/x", "http://[::1]/x"):
        assert check_return_url(good, live=True) == good
    assert check_return_url("http://g.example/x", live=False)
    assert check_return_url("https://g.example/" + "a" * (MAX_RETURN_URL - 18), live=True)
    for bad, live in (
        ("http://g.example/x", True),
        ("https://g.example/" + "a" * MAX_RETURN_URL, False),
        ("javascript:alert(1)", False),
        ("DATA:text/html,x", False),
        ("no-scheme", False),
        ("https:///path", False),
        ("https://g.example/a b", False),
        ("https://g.example/\x85", False),
        ("https://g.example:\uff18\uff10/", False),
    ):
        refused(Reason.INVALID_RETURN_URL, check_return_url, bad, live=live)


@pytest.mark.parametrize(
    ("char", "control"),
    [("\x00", True), ("\x1f", True), (" ", False), ("~", False), ("\x7f", True), ("\x9f", True), ("\xa0", False)],
)
def test_control_characters_at_the_edges_of_their_ranges(char: str, control: bool) -> None:
    assert has_control(f"a{char}b") is control
    if control:
        refused(Reason.INVALID_ARGUMENT, ids.requested_id, f"a{char}b", "id")
        refused(Reason.INVALID_METADATA, check_text, char, "x", Reason.INVALID_METADATA)
    else:
        assert ids.requested_id(f"a{char}b", "id") == f"a{char}b"
        assert check_text(char, "x") == char


def test_ids() -> None:
    made = ids.new_id(ids.PAYMENT)
    assert ids.has_prefix(made, ids.PAYMENT) and not ids.has_prefix(made, ids.SESSION)
    assert not ids.has_prefix("pay_short", ids.PAYMENT) and not ids.has_prefix(
        "pay" + made[3:].replace("_", "-"), "pay"
    )
    assert len(ids.new_event_id()) == 36
    made_ids = {ids.new_event_id() for _ in range(1000)}
    assert len(made_ids) == 1000
    for made_id in made_ids:  # random UUIDs, written as str(uuid.uuid4()) writes them
        parsed = uuid.UUID(made_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, made_id)
    # Every bit but the version's and the variant's is random: each hex digit takes many values.
    for position, digit in enumerate(made_ids.pop()):
        if digit != "-" and position not in (14, 19):
            assert len({made_id[position] for made_id in made_ids}) > 8


def test_a_session_in_a_final_state_is_neither_lapsed_nor_moved() -> None:
    paid = replace(session(SessionStatus.PAID), expires_at=NOW - timedelta(hours=1))
    assert not paid.is_lapsed(NOW) and paid.as_seen(NOW) is paid


# --- Deliveries and idempotency records ------------------------------------------------------


@pytest.mark.parametrize("start", list(DeliveryStatus))
@pytest.mark.parametrize(
    ("succeeded", "retry", "target"), [(True, None, "succeeded"), (False, NOW, "pending"), (False, None, "failed")]
)
def test_a_delivery_moves_only_as_the_table_says(
    start: DeliveryStatus, succeeded: bool, retry: datetime | None, target: str
) -> None:
    assert {(a, b) for a in DELIVERY_TRANSITIONS for b in DELIVERY_TRANSITIONS[a]} == {
        (DeliveryStatus.PENDING, DeliveryStatus.PENDING),
        (DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED),
        (DeliveryStatus.PENDING, DeliveryStatus.FAILED),
    }
    if start is DeliveryStatus.PENDING:
        assert after_attempt(start, succeeded=succeeded, next_attempt_at=retry) == target
    else:
        refused(Reason.INTERNAL, after_attempt, start, succeeded=succeeded, next_attempt_at=retry)


def test_only_a_done_idempotency_record_is_replayed() -> None:
    assert {(a, b) for a in IDEMPOTENCY_TRANSITIONS for b in IDEMPOTENCY_TRANSITIONS[a]} == {
        (IdempotencyState.RUNNING, IdempotencyState.DONE)
    }
    assert replayable("done") and not replayable("running")


@pytest.mark.parametrize("lifecycle", [SessionStatus, PaymentStatus, RefundStatus, DeliveryStatus, IdempotencyState])
def test_every_state_of_every_lifecycle_says_what_it_means(lifecycle: type) -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(lifecycle))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        node.targets[0].id
        for node, after in pairwise(body)
        if isinstance(node, ast.Assign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
    }
    assert documented == {member.name for member in lifecycle}
