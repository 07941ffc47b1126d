"""The dispatcher's parts on their own: the wake-up, the slots in flight, one POST, the outcome."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.receiver import Answer, Receiver
from toffeepay_server.events import wakeup as wakeup_module
from toffeepay_server.events.inflight import InFlight
from toffeepay_server.events.sender import Reply, post
from toffeepay_server.events.transport import webhook_client
from toffeepay_server.events.wakeup import Wake, WakeUp
from toffeepay_server.services.outbox import Job, Limits, Outcome

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeWatch:
    def __init__(self) -> None:
        self.moved = False
        self.closed = False

    def changed(self) -> bool:
        moved, self.moved = self.moved, False
        return moved

    def close(self) -> None:
        self.closed = True


def make_wakeup(clock: Clock, **options: Any) -> WakeUp:
    options.setdefault("poll", 0.001)
    options.setdefault("batch_window", 0.0)
    return WakeUp(signal=asyncio.Event(), clock=clock, due_check=1.0, **options)


async def test_a_new_wake_up_looks_at_once_then_on_every_commit() -> None:
    clock = Clock()
    wakeup = make_wakeup(clock)
    assert await wakeup.next() is Wake.COMMIT
    wakeup.set()
    assert await wakeup.next() is Wake.COMMIT
    assert not wakeup.signal.is_set()


async def test_the_timer_comes_round_once_per_due_check() -> None:
    clock = Clock()
    watch = FakeWatch()
    wakeup = make_wakeup(clock, watch=watch)
    assert await wakeup.next() is Wake.COMMIT
    assert await wakeup.next() is Wake.DUE  # the first check is due at once
    # Not due again until the clock moves on: only another process's commit wakes it meanwhile.
    watch.moved = True
    assert await wakeup.next() is Wake.FOREIGN_COMMIT
    clock.now += 1.0
    assert await wakeup.next() is Wake.DUE


async def test_a_commit_wins_over_the_timer_and_the_watch() -> None:
    clock = Clock()
    watch = FakeWatch()
    wakeup = make_wakeup(clock, watch=watch)
    await wakeup.next()
    watch.moved = True
    wakeup.set()
    assert await wakeup.next() is Wake.COMMIT
    assert watch.moved  # not even looked at


async def test_commits_within_the_batch_window_wait_for_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    wakeup = make_wakeup(clock, batch_window=0.5)
    assert await wakeup.next() is Wake.COMMIT
    monkeypatch.setattr(wakeup_module.asyncio, "sleep", sleep)
    clock.now += 0.2
    wakeup.set()
    assert await wakeup.next() is Wake.COMMIT
    assert slept == [pytest.approx(0.3)]
    clock.now += 0.5
    wakeup.set()
    assert await wakeup.next() is Wake.COMMIT
    assert slept == [pytest.approx(0.3)]  # the window had passed: no wait


async def test_notifications_wake_it_and_closing_releases_every_source() -> None:
    clock = Clock()
    watch = FakeWatch()
    listening = asyncio.Event()
    dropped: list[bool] = []

    async def listen(wake: Any) -> None:
        listening.set()
        wake()
        await asyncio.Event().wait()

    wakeup = make_wakeup(clock, watch=watch, listen=listen, on_close=lambda: dropped.append(True))
    assert await wakeup.next() is Wake.COMMIT
    wakeup.start()
    await listening.wait()
    assert await wakeup.next() is Wake.COMMIT
    listener = wakeup.listener
    assert listener is not None
    await wakeup.close()
    assert listener.cancelled() and watch.closed and dropped == [True]


def job(endpoint_id: str, game_id: str = "game_a", mode: str = "sandbox") -> Job:
    endpoint = SimpleNamespace(id=endpoint_id, game_id=game_id, mode=mode)
    return cast(Job, SimpleNamespace(endpoint=endpoint))


def test_in_flight_counts_slots_and_frees_them() -> None:
    inflight = InFlight(Limits(per_endpoint=2, per_scope=3, per_mode=10))
    assert not inflight
    first, second, other = job("we_1"), job("we_1"), job("we_2")
    for j in (first, second, other):
        inflight.take(j)
    assert inflight.endpoints == {"we_1": 2, "we_2": 1}
    assert inflight.scopes == {"sandbox:game_a": 3}
    assert inflight.modes == {"sandbox": 3}
    capacity = inflight.capacity()
    assert capacity.busy() == ["we_1"] and capacity.busy_scopes() == ["sandbox:game_a"]
    inflight.release(first)
    inflight.release(other)
    assert inflight.endpoints == {"we_1": 1} and "we_2" not in inflight.endpoints
    assert inflight.capacity().busy() == []
    inflight.release(second)
    assert not inflight and not inflight.scopes and not inflight.modes


def test_only_a_complete_2xx_reply_is_ok() -> None:
    assert Reply(latency_ms=1, status_code=204).ok
    assert not Reply(latency_ms=1, status_code=500).ok
    assert not Reply(latency_ms=1, status_code=302).ok
    assert not Reply(latency_ms=1, error="ConnectError: refused").ok
    assert not Reply(latency_ms=1, status_code=200, error="cut off").ok


def test_an_outcome_is_built_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        Outcome(job(""), NOW, True)  # type: ignore[misc, unused-ignore]
    outcome = Outcome(job=job("we_1"), attempted_at=NOW, succeeded=False, error="internal error")
    assert (outcome.status_code, outcome.latency_ms, outcome.next_attempt_at) == (None, 0, None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(tolerance=None)
    yield r
    r.close()


async def test_post_reads_the_status_retry_after_and_an_excerpt(receiver: Receiver) -> None:
    receiver.expect("/hook", None, Answer(status=429, headers={"Retry-After": "7"}, body=b"slow down" * 1000))
    async with webhook_client(private=True, max_connections=2, timeout=5) as client:
        reply = await post(client, receiver.url("/hook"), b"{}", {"Content-Type": "application/json"}, 5)
    assert (reply.status_code, reply.retry_after, reply.error) == (429, "7", None)
    assert reply.excerpt is not None and reply.excerpt.startswith("slow down") and len(reply.excerpt) == 1024
    assert not reply.ok


async def test_post_turns_a_refused_connection_into_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with webhook_client(private=True, max_connections=2, timeout=5) as client:
        reply = await post(client, f"http://127.0.0.1:{port}/hook", b"{}", {}, 5)
    assert reply.status_code is None and reply.error and not reply.ok


def test_a_request_fits_while_its_endpoint_game_and_mode_have_room() -> None:
    inflight = InFlight(Limits(per_endpoint=2, per_scope=3, per_mode=8, guaranteed=1))
    first = job("we_1")
    assert inflight.fits(first)
    inflight.take(first)
    inflight.take(job("we_1"))
    assert not inflight.fits(job("we_1"))  # the endpoint's limit
    assert inflight.fits(job("we_2"))
    inflight.take(job("we_2"))
    assert not inflight.fits(job("we_3"))  # the game's share
    assert inflight.fits(job("we_4", game_id="game_b"))
    for n in range(3):
        inflight.take(job(f"we_c{n}", game_id=f"game_c{n}"))
    # Two slots left of eight: kept for games with fewer than `guaranteed` in flight.
    assert not inflight.fits(job("we_c0b", game_id="game_c0"))
    assert inflight.fits(job("we_d", game_id="game_d"))
    inflight.release(first)
    assert inflight.fits(job("we_1"))


def test_the_lease_ahead_limits_keep_the_shares_at_a_larger_scale() -> None:
    limits = Limits(per_endpoint=16, per_scope=64, per_mode=256, guaranteed=4)
    assert limits.times(3) == Limits(per_endpoint=48, per_scope=192, per_mode=768, guaranteed=12)
    assert limits.times(3).reserve == 3 * limits.reserve
