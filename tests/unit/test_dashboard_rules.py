"""Dashboard rules without I/O: roles per game, emails and passwords, idle sessions, SVG charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from toffeepay_server.dashboard import charts
from toffeepay_server.domain.accounts import (
    AccessDenied,
    Account,
    Action,
    Role,
    check_password,
    idle_expired,
    key_action,
    normalize_email,
    parse_role,
    touch_due,
)
from toffeepay_server.domain.errors import DomainError
from toffeepay_server.domain.keys import Mode

ALLOWED = {
    Role.VIEWER: {Action.READ},
    Role.DEVELOPER: {Action.READ, Action.MANAGE_WEBHOOKS, Action.MANAGE_SANDBOX_KEYS, Action.REFUND},
    Role.OWNER: set(Action),
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_allows_exactly_its_actions_in_its_game_only(role: Role) -> None:
    account = Account("usr_1", "a@studio.example", False, {"space": role})
    for action in Action:
        assert account.may(action, "space") == (action in ALLOWED[role])
        assert not account.may(action, "other_game")
        if action not in ALLOWED[role]:
            with pytest.raises(AccessDenied):
                account.require(action, "space")
    with pytest.raises(AccessDenied):
        account.require(Action.READ, "other_game")


def test_an_operator_owns_every_game() -> None:
    operator = Account("usr_2", "ops@example.com", True, {})
    assert all(operator.may(action, "any_game") for action in Action)
    assert operator.role_in("any_game") is Role.OWNER


def test_live_keys_need_more_than_sandbox_keys() -> None:
    assert key_action(Mode.LIVE) is Action.MANAGE_LIVE_KEYS
    assert key_action(Mode.SANDBOX) is Action.MANAGE_SANDBOX_KEYS


def test_emails_passwords_and_roles_are_checked() -> None:
    assert normalize_email("  Dev@Studio.Example ") == "dev@studio.example"
    for bad in ("", "no-at-sign", "a@b", "a b@c.d", "a@b.c\x00", "x" * 250 + "@b.cd"):
        with pytest.raises(DomainError):
            normalize_email(bad)
    assert check_password("twelve chars") == "twelve chars"
    with pytest.raises(DomainError):
        check_password("short")
    assert parse_role("developer") is Role.DEVELOPER
    with pytest.raises(DomainError):
        parse_role("admin")


def test_idle_sessions_end_and_activity_is_recorded_sparingly() -> None:
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    idle = timedelta(hours=12)
    assert not idle_expired(seen, seen + timedelta(hours=11, minutes=59), idle)
    assert idle_expired(seen, seen + idle, idle)
    assert not touch_due(seen, seen + timedelta(seconds=59), idle)
    assert touch_due(seen, seen + timedelta(minutes=1), idle)
    assert touch_due(seen, seen + timedelta(seconds=1), timedelta(seconds=5))  # short timeouts: a tenth


def test_charts_are_svg_with_a_text_alternative_and_escape_labels() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    svg = charts.bar_chart(
        "Sessions <per> day",
        days,
        [charts.Series("created", [i for i in range(30)], "created"), charts.Series("paid", [0] * 30, "paid")],
        summary="29 at most & 0 paid",
    )
    root = ET.fromstring(str(svg))
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    texts = {el.get("id"): el.text for el in root.iter() if el.get("id")}
    assert texts[title_id] == "Sessions <per> day" and texts[desc_id] == "29 at most & 0 paid"
    bars = [el for el in root.iter() if el.tag.endswith("rect")]
    assert len(bars) == 29  # zero-height bars are not drawn
    heights = [float(b.get("height")) for b in bars]
    assert heights == sorted(heights)
    assert "<script" not in str(svg) and "style=" not in str(svg)
