"""Endpoint rules, the address policy and the retry schedule (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.webhooks import (
    Endpoint,
    address_allowed,
    check_event_types,
    check_format,
    check_overlap,
    check_url,
)
from toffeepay_server.events.retry import RetryPolicy, parse_retry_after

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "live", "allowed"),
    [
        ("93.184.215.14", True, True),
        ("2606:4700:4700::1111", True, True),
        ("127.0.0.1", True, False),
        ("127.0.0.1", False, True),
        ("::1", True, False),
        ("10.0.0.8", True, False),
        ("10.0.0.8", False, True),
        ("172.16.5.4", True, False),
        ("192.168.1.1", True, False),
        ("100.64.0.1", True, False),
        ("169.254.169.254", False, False),
        ("169.254.169.254", True, False),
        ("100.100.100.200", False, False),
        ("fd00:ec2::254", False, False),
        ("fe80::1%eth0", False, False),
        ("::ffff:127.0.0.1", True, False),
        ("::ffff:169.254.169.254", False, False),
        ("2002:7f00:1::", True, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("not an address", False, False),
    ],
)
def test_address_policy(address: str, live: bool, allowed: bool) -> None:
    assert address_allowed(address, live=live) is allowed


@pytest.mark.parametrize(
    ("url", "live"),
    [
        ("https://hooks.example.com/toffeepay", True),
        ("https://1.1.1.1:8443/x?y=1", True),
        ("http://localhost:8080/hooks", False),
        ("http://127.0.0.1/hooks", False),
        ("http://192.168.1.20/hooks", False),
    ],
)
def test_urls_accepted(url: str, live: bool) -> None:
    assert check_url(url, live=live) == url


@pytest.mark.parametrize(
    ("url", "live"),
    [
        ("http://hooks.example.com/", True),
        ("https://localhost/x", True),
        ("https://api.localhost/x", True),
        ("https://10.0.0.1/x", True),
        ("https://169.254.169.254/", False),
        ("https://user:pass@hooks.example.com/", False),
        ("https://hooks.example.com:99999/", False),
        ("https://hooks example.com/", False),
        ("ftp://hooks.example.com/", False),
        ("hooks.example.com/x", False),
        ("https:///x", False),
        ("https://x/" + "a" * 2048, False),
        ("", False),
    ],
)
def test_urls_refused(url: str, live: bool) -> None:
    with pytest.raises(DomainError) as caught:
        check_url(url, live=live)
    assert caught.value.reason is Reason.INVALID_URL


def test_formats_filters_and_overlap() -> None:
    assert check_format("") == "json" and check_format("legacy_form") == "legacy_form"
    with pytest.raises(DomainError, match="invalid_format"):
        check_format("xml")
    assert check_event_types(["payment.succeeded", "session.paid", "payment.succeeded"]) == (
        "payment.succeeded",
        "session.paid",
    )
    with pytest.raises(DomainError, match="invalid_event_type"):
        check_event_types(["payment.refunded"])
    assert check_overlap(None) == timedelta(hours=24) and check_overlap(0) == timedelta(0)
    for bad in (-1, 7 * 86400 + 1):
        with pytest.raises(DomainError):
            check_overlap(bad)


def _endpoint(**changes: object) -> Endpoint:
    values: dict[str, object] = dict(
        id="we_1",
        game_id="g",
        mode="sandbox",
        url="http://localhost/",
        format="json",
        events=(),
        enabled=True,
        description=None,
        secret="whsec_new",
        previous_secret=None,
        previous_secret_expires_at=None,
        created_at=NOW,
    )
    values.update(changes)
    return Endpoint(**values)  # type: ignore[arg-type]


def test_endpoint_wants_and_secrets() -> None:
    legacy = _endpoint(format="legacy_form")
    assert legacy.wants("payment.succeeded") and not legacy.wants("session.created")
    filtered = _endpoint(events=("session.paid",))
    assert filtered.wants("session.paid") and not filtered.wants("session.created")
    rotated = _endpoint().rotated("whsec_newer", NOW, timedelta(hours=1))
    assert rotated.signing_secrets(NOW) == ["whsec_newer", "whsec_new"]
    assert rotated.signing_secrets(NOW + timedelta(hours=1)) == ["whsec_newer"]
    assert _endpoint().rotated("whsec_x", NOW, timedelta(0)).signing_secrets(NOW) == ["whsec_x"]


def test_retry_schedule_with_jitter_and_deadline() -> None:
    exact = RetryPolicy(jitter=lambda s: s)
    waits = [(exact.next_attempt(n, NOW, NOW) - NOW).total_seconds() for n in range(1, 11)]
    assert waits == [5, 30, 120, 600, 1800, 3600, 10800, 21600, 21600, 21600]
    assert exact.next_attempt(20, NOW, NOW + timedelta(days=2, hours=19)) is None
    assert exact.next_attempt(20, NOW, NOW + timedelta(days=2, hours=18)) == NOW + timedelta(days=3)
    jittered = RetryPolicy(jitter=lambda s: s * 1.1)
    assert jittered.next_attempt(1, NOW, NOW) == NOW + timedelta(seconds=5.5)
    assert exact.next_attempt(1, NOW, NOW, retry_after=timedelta(minutes=2)) == NOW + timedelta(minutes=2)
    assert exact.next_attempt(1, NOW, NOW, retry_after=timedelta(days=2)) == NOW + timedelta(hours=6)
    assert exact.next_attempt(4, NOW, NOW, retry_after=timedelta(seconds=1)) == NOW + timedelta(minutes=10)


def test_default_jitter_stays_within_ten_percent() -> None:
    policy = RetryPolicy()
    for _ in range(200):
        wait = (policy.next_attempt(2, NOW, NOW) - NOW).total_seconds()
        assert 27 <= wait <= 33


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == timedelta(seconds=120)
    assert parse_retry_after("Tue, 01 Jan 2030 00:10:00 GMT", NOW) == timedelta(minutes=10)
    assert parse_retry_after("Mon, 31 Dec 2029 00:00:00 GMT", NOW) == timedelta(0)
    for unreadable in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(unreadable, NOW) is None
