"""Group commit for SQLite: the write transactions of one process share a commit.

SQLite takes one writer at a time, and a commit costs far more than the few inserts of a
request (WAL frames for every page touched, and with `synchronous=FULL` an fsync: 0.7 to
2.6 ms on the virtual disk of the benchmarks). So the writer connection keeps one transaction open while
requests arrive: each `Database.transaction()` block runs alone on it, inside a savepoint
of its own (rolled back alone if it raises), and then waits for the commit. The commit is
sent as soon as the event loop has run every block that was ready, so one fsync covers all
of them; each block's caller goes on only once the commit holding its writes succeeded
(and sees its error if it failed: then nothing of the batch was written). While a commit
is under way (in a thread, so the loop serves other requests meanwhile), newly ready blocks
wait for it and form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from . import audit

if TYPE_CHECKING:
    from ..domain.events import Event
    from .database import Database, UnitOfWork

_SAVEPOINT = "toffeepay_block"


class _Waiting:
    __slots__ = ("done", "entry", "events", "outbox_changed")

    def __init__(
        self, done: asyncio.Future[None], events: list[Event], outbox_changed: bool, entry: audit.AuditEntry | None
    ) -> None:
        self.done = done
        self.events = events
        self.outbox_changed = outbox_changed
        self.entry = entry


class Span:
    """Writes that run alone on the writer connection, from `open_span()` to `close_span()`
    (or `abort_span()`): one savepoint, rolled back alone, committed with its batch."""

    __slots__ = ("conn", "raw")

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.raw = _raw(conn)


class GroupCommit:
    def __init__(self, db: Database, make_uow: Callable[[AsyncConnection], UnitOfWork]) -> None:
        self.db = db
        self.make_uow = make_uow
        # One span at a time on the writer connection, and never during a commit.
        self.lock = asyncio.Lock()
        # The writer connection stays checked out between batches (taking it from the pool
        # and giving it back cost about 75 µs a batch); `tx` is the open batch, if any.
        self.conn: AsyncConnection | None = None
        self.tx: AsyncTransaction | None = None
        self.waiting: list[_Waiting] = []
        self.flush: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def block(self) -> AsyncIterator[UnitOfWork]:
        """One `Database.transaction()` block: a span of its own."""
        span = await self.open_span()
        uow = self.make_uow(span.conn)
        try:
            yield uow
            await uow.flush_events()
        except BaseException as exc:
            await self.abort_span(span, exc)
            raise
        await self.close_span(span, uow.events, uow.outbox_changed)

    async def open_span(self) -> Span:
        """Take the writer (waiting for the spans before, and for a commit under way)."""
        await self.lock.acquire()
        try:
            if self.tx is None:
                if self.conn is None:
                    self.conn = await self.db.writer.connect()
                try:
                    self.tx = await self.conn.begin()
                except BaseException:
                    await self._close()
                    raise
            assert self.conn is not None  # a batch is open on it
            span = Span(self.conn)
            span.raw.execute(f"SAVEPOINT {_SAVEPOINT}")
        except BaseException:
            self.lock.release()
            raise
        return span

    async def close_span(self, span: Span, events: list[Event], outbox_changed: bool) -> None:
        """Keep the span's writes, let the next span run, and return once they are committed
        (raising the commit's error if it failed: then nothing of them was written)."""
        try:
            try:
                entry = audit.take_pending()
                if entry:
                    await audit.insert_entry(span.conn, entry)
                span.raw.execute(f"RELEASE {_SAVEPOINT}")
            except BaseException as exc:
                await self._undo_span(span.raw, exc)
                self._schedule_commit()
                raise
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting.append(_Waiting(done, events, outbox_changed, entry))
            self._schedule_commit()
        finally:
            self.lock.release()
        await done

    async def abort_span(self, span: Span, exc: BaseException) -> None:
        """Roll back the span's writes alone, and let the next span run."""
        try:
            await self._undo_span(span.raw, exc)
            self._schedule_commit()
        finally:
            self.lock.release()

    def _schedule_commit(self) -> None:
        """Commit (or, with nothing to commit, end) the open transaction once the blocks ready
        now have run: never leave it open, holding the database's write lock."""
        if self.flush is None and self.tx is not None:
            self.flush = asyncio.get_running_loop().create_task(self._commit())

    async def _undo_span(self, raw: sqlite3.Connection, exc: BaseException) -> None:
        """Roll back the failed span alone; should SQLite have rolled back the whole transaction
        (some errors do), the blocks waiting for this commit lose their writes: tell them."""
        if raw.in_transaction:
            try:
                raw.execute(f"ROLLBACK TO {_SAVEPOINT}")
                raw.execute(f"RELEASE {_SAVEPOINT}")
                return
            except sqlite3.Error:
                pass
        waiting, self.waiting = self.waiting, []
        _fail(waiting, exc)
        await self._discard()

    async def _commit(self) -> None:
        async with self.lock:
            self.flush = None
            waiting, self.waiting = self.waiting, []
            if not waiting:
                await self._discard()
                return
            try:
                assert self.conn is not None and self.tx is not None
                await commit(self.conn, self.tx)
            except BaseException as exc:
                _fail(waiting, exc)
                await self._discard()
                if not isinstance(exc, Exception):
                    raise
                return
            self.tx = None  # committed; the connection serves the next batch
        for item in waiting:
            if item.entry is not None:
                item.entry.written = True
            self.db.committed(item.events, item.outbox_changed)
            if not item.done.done():
                item.done.set_result(None)

    async def close(self) -> None:
        """Give the writer connection back to its pool (Database.dispose), once the commit
        under way, if any, is done; a transaction still open is rolled back."""
        if self.flush is not None:
            with contextlib.suppress(Exception):
                await self.flush
        async with self.lock:
            await self._discard()

    async def _discard(self) -> None:
        tx = self.tx
        try:
            if tx is not None and tx.is_active:
                await tx.rollback()
        except Exception:  # the connection is closed below either way
            pass
        await self._close()

    async def _close(self) -> None:
        conn, self.conn, self.tx = self.conn, None, None
        if conn is not None:
            await conn.close()


def _fail(waiting: list[_Waiting], exc: BaseException) -> None:
    """Answer every block of a lost batch with the error (a cancellation as _BatchLost)."""
    for item in waiting:
        if not item.done.done():
            item.done.set_exception(exc if isinstance(exc, Exception) else _BatchLost(exc))


class _BatchLost(Exception):
    """The transaction holding a block's writes was rolled back by another block's failure."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the write was rolled back with its batch ({type(cause).__name__})")


async def commit(conn: AsyncConnection, tx: AsyncTransaction) -> None:
    """Commit an inline SQLite transaction on a thread: the commit waits for the disk (the WAL's
    fsync with synchronous=FULL, its writes otherwise), and the event loop serves meanwhile.
    Nothing else uses the connection until this returns (its holder waits here)."""
    raw = _raw(conn)
    try:
        await asyncio.to_thread(raw.execute, "COMMIT")
    except sqlite3.Error as exc:
        raise DBAPIError.instance("COMMIT", None, exc, sqlite3.Error) from exc
    await tx.commit()  # SQLAlchemy's side: the connection has nothing left to commit


def _raw(conn: AsyncConnection) -> sqlite3.Connection:
    sync: Any = conn.sync_connection
    return sync.connection.dbapi_connection._connection._conn
