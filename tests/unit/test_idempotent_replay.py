"""The Idempotency-Key protocol and its waiters, against an in-memory record store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from toffeepay_server.api import replay as replay_module
from toffeepay_server.api.replay import IdempotentReplay, Waiters
from toffeepay_server.domain.idempotency import IdempotencyState
from toffeepay_server.services import idempotency

KEY = ("key_1", "idem-1")


# Waiters


async def test_a_waiter_is_woken_by_finished_and_leaves_nothing_behind() -> None:
    waiters = Waiters()
    waiting = asyncio.create_task(waiters.wait(KEY, timeout=30))
    while not len(waiters):
        await asyncio.sleep(0)
    waiters.finished(KEY)
    await asyncio.wait_for(waiting, timeout=5)
    assert len(waiters) == 0


async def test_a_waiter_that_times_out_removes_its_entry() -> None:
    waiters = Waiters()
    await waiters.wait(KEY, timeout=0.001)
    assert len(waiters) == 0


async def test_a_cancelled_waiter_removes_its_entry() -> None:
    waiters = Waiters()
    waiting = asyncio.create_task(waiters.wait(KEY, timeout=30))
    while not len(waiters):
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(waiters) == 0


async def test_the_entry_stays_until_the_last_of_several_waiters_leaves() -> None:
    waiters = Waiters()
    first = asyncio.create_task(waiters.wait(KEY, timeout=30))
    second = asyncio.create_task(waiters.wait(KEY, timeout=30))
    await asyncio.sleep(0)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert len(waiters) == 1
    waiters.finished(KEY)
    await asyncio.wait_for(second, timeout=5)
    assert len(waiters) == 0


def test_finished_without_waiters_does_nothing() -> None:
    waiters = Waiters()
    waiters.finished(KEY)
    assert len(waiters) == 0


# The protocol


class _Records:
    """The three record operations the protocol uses, in memory."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    async def claim(self, _ctx: Any, *, api_key_id: str, key: str, request_hash: str, owner: str, lease: Any) -> Any:
        row = self.rows.get((api_key_id, key))
        if row is None:
            self.rows[(api_key_id, key)] = {"hash": request_hash, "owner": owner, "state": IdempotencyState.RUNNING}
            return None
        return idempotency.Stored(row["hash"], row["state"], row.get("status"), row.get("headers"), row.get("body"))

    async def finish(self, _uow: Any, *, api_key_id: str, key: str, owner: str, status: int, headers: Any, body: bytes):
        row = self.rows[(api_key_id, key)]
        if row["owner"] != owner:
            raise idempotency.LostClaim
        row.update(state=IdempotencyState.DONE, status=status, headers=headers, body=body)

    async def release(self, _ctx: Any, *, api_key_id: str, key: str, owner: str) -> None:
        if self.rows.get((api_key_id, key), {}).get("owner") == owner:
            del self.rows[(api_key_id, key)]


class _Held:
    @contextlib.asynccontextmanager
    async def final(self) -> AsyncIterator[None]:
        yield None

    async def rollback(self) -> None:
        pass


class _Db:
    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[_Held]:
        yield _Held()


class _Ctx:
    db = _Db()


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> _Records:
    records = _Records()
    monkeypatch.setattr(replay_module.idempotency, "claim", records.claim)
    monkeypatch.setattr(replay_module.idempotency, "finish", records.finish)
    monkeypatch.setattr(replay_module.idempotency, "release", records.release)
    return records


class _Answer:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return self.messages[0]["status"]

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class _App:
    """Answers 200 once `release` is set, or fails with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.error = error
        self.calls = 0

    async def __call__(self, _scope: Any, _receive: Any, send: Any) -> None:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"id":"sess_1"}'})


def _protocol(app: _App, wait: float = 30) -> IdempotentReplay:
    return IdempotentReplay(app, _Ctx(), wait=wait, lease=timedelta(seconds=60))  # type: ignore[arg-type]


async def _call(protocol: IdempotentReplay, answer: _Answer, request_hash: str = "h1") -> None:
    await protocol({}, _receive, answer.send, api_key_id=KEY[0], key=KEY[1], request_hash=request_hash)


async def _until_waiting(protocol: IdempotentReplay) -> None:
    while not len(protocol.waiters):
        await asyncio.sleep(0.001)


async def test_a_retry_waits_for_the_first_request_then_replays_it_and_no_waiter_is_left(records: _Records) -> None:
    app = _App()
    protocol = _protocol(app)
    first, second = _Answer(), _Answer()
    running = asyncio.create_task(_call(protocol, first))
    await app.entered.wait()
    retry = asyncio.create_task(_call(protocol, second))
    await _until_waiting(protocol)
    app.release.set()
    await asyncio.wait_for(asyncio.gather(running, retry), timeout=5)
    assert app.calls == 1
    assert (first.status, first.body) == (200, b'{"id":"sess_1"}')
    assert (second.status, second.body) == (200, b'{"id":"sess_1"}')
    assert second.headers[b"idempotent-replayed"] == b"true"
    assert len(protocol.waiters) == 0


async def test_when_the_first_request_fails_the_key_is_free_and_no_waiter_is_left(records: _Records) -> None:
    app = _App(error=RuntimeError("boom"))
    protocol = _protocol(app)
    running = asyncio.create_task(_call(protocol, _Answer()))
    await app.entered.wait()
    retry = asyncio.create_task(_call(protocol, _Answer()))
    await _until_waiting(protocol)
    app.release.set()
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(running, timeout=5)
    # The retry takes the freed key over and runs the request itself (failing the same way).
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(retry, timeout=5)
    assert app.calls == 2
    assert records.rows == {}
    assert len(protocol.waiters) == 0


async def test_a_waiter_whose_client_went_away_leaves_nothing_behind(records: _Records) -> None:
    app = _App()
    protocol = _protocol(app)
    running = asyncio.create_task(_call(protocol, _Answer()))
    await app.entered.wait()
    retry = asyncio.create_task(_call(protocol, _Answer()))
    await _until_waiting(protocol)
    retry.cancel()  # how the server ends the request of a client that disconnected
    with pytest.raises(asyncio.CancelledError):
        await retry
    assert len(protocol.waiters) == 0
    app.release.set()
    await asyncio.wait_for(running, timeout=5)
    assert len(protocol.waiters) == 0


async def test_the_owner_whose_client_went_away_frees_the_key(records: _Records) -> None:
    app = _App()
    protocol = _protocol(app)
    running = asyncio.create_task(_call(protocol, _Answer()))
    await app.entered.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert records.rows == {}
    assert len(protocol.waiters) == 0


async def test_a_retry_gives_up_with_in_use_after_its_wait_and_leaves_nothing_behind(records: _Records) -> None:
    app = _App()
    protocol = _protocol(app, wait=0.05)
    running = asyncio.create_task(_call(protocol, _Answer()))
    await app.entered.wait()
    second = _Answer()
    await asyncio.wait_for(_call(protocol, second), timeout=5)
    assert second.status == 409
    assert b"still being processed" in second.body
    assert len(protocol.waiters) == 0
    app.release.set()
    await asyncio.wait_for(running, timeout=5)


async def test_another_request_under_the_same_key_is_refused(records: _Records) -> None:
    app = _App()
    app.release.set()
    protocol = _protocol(app)
    await _call(protocol, _Answer())
    other = _Answer()
    await _call(protocol, other, request_hash="h2")
    assert b"different request" in other.body
    assert app.calls == 1
