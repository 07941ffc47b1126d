"""The fulfilment rules: who can be fulfilled, when a session is overdue, and grace durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.test_domain import NOW, session
from toffeepay_server.domain import fulfilment
from toffeepay_server.domain.durations import parse_duration
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.sessions import SessionStatus

GRACE = timedelta(minutes=10)


def paid(**changes: object):
    return session(status=SessionStatus.PAID, paid_at=NOW, payment_id="pay_x", **changes)


def test_fulfil_sets_fulfilled_at_once() -> None:
    first = fulfilment.fulfil(paid(), NOW + timedelta(seconds=5))
    assert first.fulfilled_at == NOW + timedelta(seconds=5)
    assert first.event_sequence == paid().event_sequence
    again = fulfilment.fulfil(first, NOW + timedelta(minutes=1))
    assert again is first


@pytest.mark.parametrize("status", [s for s in SessionStatus if s is not SessionStatus.PAID])
def test_only_paid_sessions_are_fulfilled(status: SessionStatus) -> None:
    with pytest.raises(DomainError) as raised:
        fulfilment.fulfil(session(status=status), NOW)
    assert raised.value.reason is Reason.SESSION_NOT_PAID


def test_overdue_after_the_grace_period_only_when_not_fulfilled_or_reported() -> None:
    assert not fulfilment.is_overdue(paid(), GRACE, NOW + GRACE - timedelta(microseconds=1))
    assert fulfilment.is_overdue(paid(), GRACE, NOW + GRACE)
    assert not fulfilment.is_overdue(paid(fulfilled_at=NOW), GRACE, NOW + GRACE)
    assert not fulfilment.is_overdue(session(), GRACE, NOW + GRACE)
    reported = fulfilment.mark_overdue(paid(), NOW + GRACE)
    assert reported.event_sequence == paid().event_sequence + 1
    assert not fulfilment.is_overdue(reported, GRACE, NOW + 2 * GRACE)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10m", 600), ("1s", 1), ("90", 90), ("1.5h", 5400), ("3d", 259200), ("250ms", 0.25)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "ten minutes", "-1m", "5w", "1m30s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
