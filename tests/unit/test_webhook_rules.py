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
    private_allowed,
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
        # Azure's wire server and AWS's IPv6 DNS, in every spelling, even where private targets are allowed.
        ("168.63.129.16", False, False),
        ("168.63.129.16", True, False),
        ("::ffff:168.63.129.16", False, False),
        ("::ffff:a83f:8110", False, False),
        ("64:ff9b::a83f:8110", False, False),
        ("2002:a83f:8110::1", False, False),
        ("fd00:ec2::23", False, False),
        ("FD00:EC2:0:0:0:0:0:23", False, False),
        ("fd00:0ec2::0023", False, False),
        ("fd00:ec2::23%eth0", False, False),
        ("64:ff9b::7f00:1", True, False),
        ("fc00::1", True, False),
        ("fc00::1", False, True),
    ],
)
def test_address_policy(address: str, live: bool, allowed: bool) -> None:
    assert address_allowed(address, private=not live) is allowed


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
    assert check_url(url, private=not live) == url


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
        check_url(url, private=not live)
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


def test_private_targets_setting_per_mode() -> None:
    assert not private_allowed("none", "sandbox") and not private_allowed("none", "live")
    assert private_allowed("sandbox", "sandbox") and not private_allowed("sandbox", "live")
    assert private_allowed("all", "sandbox") and private_allowed("all", "live")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/hooks", "https://localhost/hooks", "https://10.0.0.1/x", "https://[fc00::1]/x"],
)
def test_a_refused_private_target_says_why_and_points_to_listen(url: str) -> None:
    with pytest.raises(DomainError) as caught:
        check_url(url, private=False)
    assert caught.value.reason is Reason.INVALID_URL
    assert "toffeepay listen" in caught.value.message and "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS" in caught.value.message


def test_a_metadata_target_is_refused_without_pointing_to_listen() -> None:
    for private in (False, True):
        with pytest.raises(DomainError) as caught:
            check_url("http://168.63.129.16/machine", private=private)
        assert "metadata" in caught.value.message and "listen" not in caught.value.message


def test_retry_after_of_any_length_is_clamped() -> None:
    assert parse_retry_after("9" * 25, NOW) == timedelta(hours=6)
    assert parse_retry_after("0" * 30 + "7", NOW) == timedelta(seconds=7)
    assert parse_retry_after("120", NOW) == timedelta(seconds=120)
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == timedelta(hours=6)
    assert parse_retry_after("\u0661\u0662", NOW) is None  # non-ASCII digits are not a number of seconds


def _scoped_endpoint(endpoint_id: str, game_id: str, mode: str = "sandbox") -> Endpoint:
    return Endpoint(
        endpoint_id, game_id, mode, "https://x.example/", "json", (), True, None, "whsec_x", None, None, NOW
    )


def test_capacity_gives_each_game_and_mode_its_own_share() -> None:
    from toffeepay_server.services.outbox import Capacity, Limits

    capacity = Capacity(Limits(per_endpoint=16, per_scope=64, per_mode=256, guaranteed=4), {}, {}, {})
    slow = [_scoped_endpoint(f"ep_slow_{i}", "slow") for i in range(16)]
    taken = sum(capacity.take(e) for e in slow for _ in range(16))
    assert taken == 64  # one game's many endpoints hold at most its share
    assert capacity.busy_scopes() == ["sandbox:slow"]
    # Three more slow games fill the pool down to the reserve ...
    for game in ("slow2", "slow3"):
        assert sum(capacity.take(_scoped_endpoint(f"ep_{game}_{i}", game)) for i in range(16) for _ in range(16)) == 64
    greedy = sum(capacity.take(_scoped_endpoint(f"ep_slow4_{i}", "slow4")) for i in range(16) for _ in range(16))
    assert greedy == 4  # only its guaranteed few: the last quarter is kept for others
    # ... and any other game still gets slots at once, from the reserve.
    assert all(capacity.take(_scoped_endpoint("ep_fast", f"fast{i}")) for i in range(4))
    # Live has its own pool: a full sandbox never slows it.
    for _ in range(1000):
        capacity.take(_scoped_endpoint(f"ep_fill_{_}", f"fill{_ % 200}"))
    assert capacity.full_modes() == ["sandbox"]
    assert capacity.take(_scoped_endpoint("ep_live", "slow", mode="live"))


def test_private_targets_setting_is_validated_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from toffeepay_server.config import ConfigError, Settings

    monkeypatch.delenv("TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS", raising=False)
    assert Settings.from_env().private_webhook_targets == "none"
    monkeypatch.setenv("TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS", "Sandbox")
    assert Settings.from_env().private_webhook_targets == "sandbox"
    monkeypatch.setenv("TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS", "yes")
    with pytest.raises(ConfigError, match="none, sandbox or all"):
        Settings.from_env()


def test_chaos_is_checked_and_sandbox_only() -> None:
    from toffeepay_server.domain.webhooks import Chaos, check_chaos

    chaos = Chaos(duplicate_percent=20, delay_max_seconds=300, bad_signature_percent=100)
    assert check_chaos(chaos, "sandbox") == chaos
    assert check_chaos(Chaos(), "sandbox") is None and check_chaos(Chaos(), "live") is None  # all zero: off
    assert check_chaos(None, "live") is None
    for bad in (Chaos(duplicate_percent=101), Chaos(delay_max_seconds=301), Chaos(bad_signature_percent=-1)):
        with pytest.raises(DomainError, match="invalid_argument: chaos"):
            check_chaos(bad, "sandbox")
    with pytest.raises(DomainError, match="sandbox endpoints only"):
        check_chaos(chaos, "live")


def test_retry_schedule_and_failure_periods_are_validated_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from toffeepay_server.config import ConfigError, Settings

    monkeypatch.setenv("TOFFEEPAY_WEBHOOK_RETRY_SCHEDULE", "500ms, 2s,1m")
    monkeypatch.setenv("TOFFEEPAY_WEBHOOK_RETRY_FOR", "90s")
    settings = Settings.from_env()
    assert settings.webhook_retry_schedule == (
        timedelta(milliseconds=500),
        timedelta(seconds=2),
        timedelta(minutes=1),
    )
    assert settings.webhook_retry_for == timedelta(seconds=90)
    assert settings.webhook_warn_after == timedelta(days=1) and settings.webhook_disable_after == timedelta(days=5)
    for name, value, said in (
        ("TOFFEEPAY_WEBHOOK_RETRY_SCHEDULE", "5s,,30s", "empty entry"),
        ("TOFFEEPAY_WEBHOOK_RETRY_SCHEDULE", "5 seconds", "not a duration"),
        ("TOFFEEPAY_WEBHOOK_RETRY_SCHEDULE", "0s", "longer than zero"),
        ("TOFFEEPAY_WEBHOOK_RETRY_FOR", "forever", "not a duration"),
        ("TOFFEEPAY_WEBHOOK_DISABLE_AFTER", "1h", "must not be longer"),  # warn 1d > disable 1h
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=said) as caught:
            Settings.from_env()
        assert name in str(caught.value) or "WARN_AFTER" in str(caught.value)
        monkeypatch.delenv(name)


def test_session_events_carry_the_guides_fields_at_the_top_level() -> None:
    from types import SimpleNamespace

    from toffeepay_server.domain.events import Event, session_summary

    session = SimpleNamespace(
        id="sess_1",
        user_id="player_42",
        game_id="space_shooter",
        status=SimpleNamespace(value="paid"),
        item=SimpleNamespace(title="50 Gold Coins", price=499, currency="USD"),
    )
    body = Event("e1", "payment.succeeded", "space_shooter", "sandbox", "sess_1", 3, NOW, {"status": "succeeded"},
                 session_summary(session)).body()  # fmt: skip
    assert list(body) == [
        "id",
        "event",
        "timestamp",
        "mode",
        "session_id",
        "user_id",
        "game_id",
        "status",
        "item",
        "data",
    ]
    assert body["status"] == "paid" and body["data"]["status"] == "succeeded"
    assert body["item"] == {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
    plain = Event("e2", "endpoint.failing", "g", "live", None, None, NOW, {"endpoint_id": "we_1"}).body()
    assert list(plain) == ["id", "event", "timestamp", "mode", "data"]
