"""PostgreSQL: hear of every API key revoked or changed, from any process.

A trigger on `api_keys` (migration key_changes) notifies the `toffeepay_keys` channel in
the transaction that revokes or changes a key, so the notice is sent when, and only when,
it commits. Each server process listens on one connection of its own and counts the
notices: a key read while the count stayed the same is still as it was. While the
connection is down (or not yet up) there is no count, and keys are looked up every time.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

CHANNEL = "toffeepay_keys"
# How often the listening connection is checked, so a connection that died silently
# stops vouching for kept keys within this many seconds.
CHECK_EVERY = 5.0

log = structlog.get_logger("toffeepay.store")


class KeyChanges:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.generation = 0
        self.listening = False
        self._task: asyncio.Task[None] | None = None

    def version(self) -> int | None:
        """The count of key changes heard, or None while not listening (starts listening)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._listen())
        elif self._task.get_loop() is not loop:
            return None
        return self.generation if self.listening else None

    def changed(self, *_args: Any) -> None:
        """A key changed (a notice, or a change committed by this process)."""
        self.generation += 1

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down or restarting: try again shortly
                log.info("key change feed interrupted", error=type(exc).__name__)
            await asyncio.sleep(1)

    async def _listen_once(self) -> None:
        import asyncpg

        conn = None
        try:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn: closed.set())
            await conn.add_listener(CHANNEL, self.changed)
            self.generation += 1  # whatever changed before now is not known: read again
            self.listening = True
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), CHECK_EVERY)
                if not closed.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), CHECK_EVERY)
        finally:
            self.listening = False
            self.generation += 1
            if conn is not None and not conn.is_closed():
                conn.terminate()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
