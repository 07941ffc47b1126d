"""The pure rules: money, ids, URLs, the session state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from toffeepay_server.domain import ids, money
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.sessions import TRANSITIONS, Item, Session, SessionStatus, seen_status
from toffeepay_server.domain.urls import check_return_url, with_session_id

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def session(**changes: object) -> Session:
    base = dict(
        id="sess_x",
        game_id="g",
        mode="sandbox",
        user_id="u",
        item=Item("Gems", 499, "USD"),
        status=SessionStatus.PENDING,
        return_url=None,
        metadata={},
        expires_at=NOW + timedelta(minutes=30),
        created_at=NOW,
        event_sequence=1,
    )
    base.update(changes)
    return Session(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "major"),
    [(499, "USD", "4.99"), (500, "JPY", "500"), (1500, "KWD", "1.500"), (5, "EUR", "0.05")],
)
def test_minor_units_from_iso_4217(amount: int, currency: str, major: str) -> None:
    assert money.to_major(amount, currency) == major


def test_formatting_follows_the_currency_and_locale() -> None:
    assert money.format_amount(499, "USD", "en_US") == "$4.99"
    assert money.format_amount(500, "JPY", "ja_JP") == "￥500"
    assert money.format_amount(1500, "KWD", "en_US") == "KWD1.500"
    assert money.format_amount(499, "EUR", "de_DE") == "4,99\xa0€"
    assert money.format_amount(499, "USD", "not-a-locale") == "$4.99"


def test_active_currencies_exclude_obsolete_and_non_tender() -> None:
    active = money.active_currencies()
    assert {"USD", "EUR", "JPY", "KWD", "GBP"} <= active
    assert not {"DEM", "FRF", "XXX", "XAU"} & active


def test_ids_are_typeid_and_time_ordered() -> None:
    first, second = ids.new_id("sess"), ids.new_id("sess")
    assert ids.has_prefix(first, "sess") and len(first) == len("sess_") + 26
    assert first[:15] <= second[:15]  # the leading characters encode the creation time
    assert first != second


def test_return_url_query_keeps_what_is_there() -> None:
    assert with_session_id("mygame://payment-complete", "sess_1") == "mygame://payment-complete?session_id=sess_1"
    assert (
        with_session_id("https://g.example/done?a=1&b=2", "sess_1")
        == "https://g.example/done?a=1&b=2&session_id=sess_1"
    )
    assert with_session_id("mygame://done?session_id=old", "sess_1") == "mygame://done?session_id=sess_1"


def test_return_url_rules() -> None:
    assert check_return_url("http://127.0.0.1:3000/x", live=True)
    assert check_return_url("http://game.localhost/x", live=True)
    with pytest.raises(DomainError) as refused:
        check_return_url("http://10.0.0.1/x", live=True)
    assert refused.value.reason is Reason.INVALID_RETURN_URL


def test_only_pending_moves_and_every_move_counts_a_sequence() -> None:
    assert all(not targets for status, targets in TRANSITIONS.items() if status is not SessionStatus.PENDING)
    cancelled = session().transition(SessionStatus.CANCELLED, NOW)
    assert cancelled.cancelled_at == NOW and cancelled.event_sequence == 2
    with pytest.raises(DomainError) as refused:
        cancelled.transition(SessionStatus.PAID, NOW)
    assert refused.value.reason is Reason.SESSION_NOT_PENDING


def test_lapsed_reads_expired_but_not_with_a_payment_under_way() -> None:
    lapsed = session(expires_at=NOW - timedelta(seconds=1))
    seen = lapsed.as_seen(NOW)
    assert seen.status is SessionStatus.EXPIRED and seen.expired_at == lapsed.expires_at
    paying = session(expires_at=NOW - timedelta(seconds=1), payment_id="pay_x")
    assert paying.as_seen(NOW).status is SessionStatus.PENDING
    with pytest.raises(DomainError) as refused:
        paying.check_cancellable(NOW - timedelta(minutes=1))
    assert refused.value.reason is Reason.PAYMENT_IN_PROGRESS
    with pytest.raises(DomainError) as expired:
        lapsed.check_cancellable(NOW)
    assert expired.value.reason is Reason.SESSION_EXPIRED


@pytest.mark.parametrize("status", list(SessionStatus))
@pytest.mark.parametrize("payment_id", [None, "pay_1"])
@pytest.mark.parametrize("expiry", [timedelta(seconds=-1), timedelta(0), timedelta(seconds=1)])
def test_the_status_read_alone_is_the_whole_session_as_seen(
    status: SessionStatus, payment_id: str | None, expiry: timedelta
) -> None:
    """GetSessionStatus reads three columns; it must agree with the whole session's view."""
    whole = session(status=status, payment_id=payment_id, expires_at=NOW + expiry)
    assert seen_status(status, payment_id, NOW + expiry, NOW) is whole.as_seen(NOW).status
