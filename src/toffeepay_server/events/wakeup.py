"""When the dispatcher looks at the outbox again: one wake-up over its three sources.

- a commit: a transaction of this process committed outbox work (the database sets a
  signal), or on PostgreSQL any process did (a NOTIFY, followed by a listener task);
- a foreign commit: on SQLite, another process committed something (`PRAGMA data_version`,
  looked at every `poll` seconds);
- the timer: retries and expired leases come due with the clock, not with a commit.

Commits close together are taken together: after one wake-up by a commit the next comes
no sooner than `batch_window` later, and the signals meanwhile are absorbed by it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol

import structlog

from ..services.context import ServiceContext

log = structlog.get_logger("toffeepay.dispatcher")

# Retries and expired leases come due with the clock, not with a commit: look this often.
DUE_CHECK = 1.0
# A dropped notification connection is opened again after this long.
RELISTEN = 1.0


class Wake(StrEnum):
    """Why the dispatcher woke."""

    COMMIT = "commit"
    """Outbox work was committed (in this process, or in any on PostgreSQL)."""
    DUE = "due"
    """The timer: retries or expired leases may have come due."""
    FOREIGN_COMMIT = "foreign_commit"
    """Another process committed something (SQLite); there may be new events."""


class Watch(Protocol):
    def changed(self) -> bool: ...

    def close(self) -> None: ...


class WakeUp:
    """Waits for the next reason to look at the outbox; `set` wakes it at once.

    The first `next` answers `Wake.COMMIT`, so a new dispatcher looks straight away.
    """

    def __init__(
        self,
        *,
        signal: asyncio.Event,
        poll: float,
        batch_window: float,
        watch: Watch | None = None,
        listen: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
        due_check: float = DUE_CHECK,
        clock: Callable[[], float] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.signal = signal
        self.poll = poll
        self.batch_window = batch_window
        self.watch = watch
        self.listen = listen
        self.due_check = due_check
        self.clock = clock or asyncio.get_running_loop().time
        self.on_close = on_close
        self.listener: asyncio.Task[None] | None = None
        self.first = True
        self.at_once = False
        self.next_check = 0.0
        self.last_commit = -batch_window

    @classmethod
    def of(cls, ctx: ServiceContext, *, poll: float, batch_window: float) -> WakeUp:
        """A dispatcher's wake-up: the commit signal, NOTIFY on PostgreSQL, data_version on SQLite."""
        db = ctx.db
        signal = db.outbox_signal()
        return cls(
            signal=signal,
            poll=poll,
            batch_window=batch_window,
            watch=db.commit_watch(),
            listen=db.listen_outbox if db.is_postgres else None,
            on_close=lambda: db.drop_outbox_signal(signal),
        )

    def set(self, *, at_once: bool = False) -> None:
        """Wake as a commit would; `at_once` without waiting for the end of the batch window."""
        self.at_once = self.at_once or at_once
        self.signal.set()

    def start(self) -> None:
        if self.listen is not None and self.listener is None:
            self.listener = asyncio.create_task(self._listen_forever(self.listen), name="webhook-listener")

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.listener
            self.listener = None
        if self.on_close is not None:
            self.on_close()
        if self.watch is not None:
            self.watch.close()

    async def next(self) -> Wake:
        """Wait until there is a reason to look, and say which."""
        while True:
            woken = self.first or await self._signalled()
            self.first = False
            if woken:
                if not self.at_once and (rest := self.last_commit + self.batch_window - self.clock()) > 0:
                    await asyncio.sleep(rest)
                self.at_once = False
                self.signal.clear()
                self.last_commit = self.clock()
                return Wake.COMMIT
            self.signal.clear()
            if self.clock() >= self.next_check:
                self.next_check = self.clock() + self.due_check
                return Wake.DUE
            if self.watch is not None and self.watch.changed():
                return Wake.FOREIGN_COMMIT

    async def _signalled(self) -> bool:
        try:
            async with asyncio.timeout(self.poll):
                await self.signal.wait()
        except TimeoutError:
            return False
        return True

    async def _listen_forever(self, listen: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
        """Follow PostgreSQL notifications; reconnect when the connection drops."""
        while True:
            try:
                await listen(self.signal.set)
            except Exception as exc:  # polling carries on meanwhile
                log.warning("outbox notifications unavailable", error=str(exc))
            await asyncio.sleep(RELISTEN)
