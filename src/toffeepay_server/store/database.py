"""Engines and the unit of work: one transaction that writes state and its events together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, func, insert, literal_column, select
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

from ..domain.events import Event
from . import audit, prepared, tables
from .group_commit import GroupCommit, Span
from .key_changes import KeyChanges
from .prepared import Prepared
from .secret_box import Keyring
from .sqlite_inline import inline_creator

SQLITE_BUSY_TIMEOUT_MS = 10_000
# PostgreSQL channel that tells dispatchers in other processes the outbox has news.
OUTBOX_CHANNEL = "toffeepay_outbox"


def insert_unless_present(dialect: str, table: Any, **values: Any) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` for either engine; its rowcount says whether it inserted."""
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert_(table).values(**values).on_conflict_do_nothing()


# PostgreSQL's "transaction rollback" class: a deadlock or serialization failure rolled the
# transaction back, and the same request may simply be sent again.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot take this request right now (down, restarting, no
    connection, or a deadlock that rolled it back), as opposed to a mistake in a statement."""
    if isinstance(exc, DisconnectionError | OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES:
        return True
    # asyncpg's own errors for a server that is starting or shutting down
    return type(exc).__name__ in {"CannotConnectNowError", "AdminShutdownError", "ConnectionDoesNotExistError"}


def async_url(url: str) -> str:
    """Accept the URLs operators write and pick the async driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def create_private_sqlite_file(url: str) -> None:
    """Create a new SQLite database file readable by its owner only (0600).

    It holds API key hashes, webhook secrets and players' ids; SQLite gives its -wal and
    -shm files the same mode. An existing file keeps the mode its operator gave it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    if parsed.database.startswith("file:") or parsed.query.get("mode") == "memory":
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(parsed.database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_engine(url: str, *, begin: str, pool_size: int, inline: bool = False) -> AsyncEngine:
    """A SQLite engine. `inline` runs its calls on the event loop (see sqlite_inline.py)."""
    extra: dict[str, Any] = {"async_creator": inline_creator(url)} if inline else {}
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60, **extra)

    @sa_event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours to send.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # Every commit reaches the disk before it is answered (the WAL is synced at each commit);
        # group commit (group_commit.py) shares that sync among the transactions ready at once.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if inline and begin == "BEGIN IMMEDIATE":
            # Never sleep on the write lock inside the event loop: BEGIN IMMEDIATE waits for
            # it asynchronously (below); once it holds the lock, WAL never makes it wait again.
            cursor.execute("PRAGMA busy_timeout=0")
            # The writer's savepoints (one per transaction block, group_commit.py) keep the
            # pages a block changes in a sub-journal, for ROLLBACK TO only; a block's pages
            # pass SQLite's 64 KiB in-memory limit and went to a temporary file, a third of
            # the SQLite work of a CreateSession. In memory it is freed at each RELEASE. It
            # plays no part in recovery: durability is the WAL's, at synchronous=FULL.
            cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @sa_event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if inline:
            _begin_inline(conn, begin)
        else:
            conn.exec_driver_sql(begin)

    return engine


def _begin_inline(conn: Any, begin: str) -> None:
    """Send BEGIN on an inline connection; while another process holds the write lock,
    wait for it with asyncio.sleep (so the loop serves other requests), up to the busy timeout.
    """
    raw = conn.connection.driver_connection._conn
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while time.monotonic() < deadline:
        try:
            raw.execute(begin)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                break  # not a lock wait: let SQLAlchemy report it below
        await_(asyncio.sleep(delay))
        delay = min(delay * 2, 0.01)
    conn.exec_driver_sql(begin)  # raises SQLAlchemy's error for this statement, or succeeds


@dataclass
class UnitOfWork:
    """A write transaction. Events added here are inserted just before it commits."""

    conn: AsyncConnection
    dialect: str
    events: list[Event] = field(default_factory=list)
    # Set when this transaction gives webhook dispatchers something to do.
    outbox_changed: bool = False
    # Ids of events among `events` that a statement of this transaction inserted itself.
    inserted: set[str] = field(default_factory=set)

    def add_event(self, event: Event) -> None:
        self.events.append(event)
        self.outbox_changed = True

    def add_inserted_event(self, event: Event) -> None:
        """An event a statement of this transaction inserted, with the events lock and the
        dispatchers' notice (`Database.insert_with_event`): told to the watchers at commit
        like the others, not inserted again."""
        self.events.append(event)
        self.inserted.add(event.id)
        self.outbox_changed = True

    def wake_dispatchers(self) -> None:
        self.outbox_changed = True

    async def flush_events(self) -> None:
        pending = [e for e in self.events if e.id not in self.inserted] if self.inserted else self.events
        rows = [_event_row(e) for e in pending]
        if self.dialect != "postgresql":
            if rows:
                await prepared.execute_many(self.conn, _INSERT_EVENT, rows)
            return
        if self.inserted and not rows:
            return  # the statement that inserted them took the lock and notified
        scopes = sorted({(e.game_id, e.mode) for e in pending})
        if len(scopes) == 1 and self.outbox_changed:
            # The usual case, in one round trip: lock, notify and insert.
            key = _events_lock_key(*scopes[0])
            await prepared.execute_many(
                self.conn, _INSERT_EVENT_LOCKED, [{**row, "lock_key": key, "channel": OUTBOX_CHANNEL} for row in rows]
            )
            return
        await self._lock_and_notify(scopes)
        if rows:
            await prepared.execute_many(self.conn, _INSERT_EVENT, rows)

    async def _lock_and_notify(self, scopes: list[tuple[str, str]]) -> None:
        """PostgreSQL: wake listening dispatchers when (and only if) this transaction commits, and
        serialise event inserts per game and mode until commit, so event positions commit in
        order and an `after` cursor never skips a late-committing row."""
        keys = [_events_lock_key(game_id, mode) for game_id, mode in scopes]
        if self.outbox_changed:
            await prepared.fetch_one(self.conn, _NOTIFY, {"channel": OUTBOX_CHANNEL})
        for key in keys:
            await prepared.fetch_one(self.conn, _LOCK_EVENTS, {"key": key})


def _events_lock_key(game_id: str, mode: str) -> int:
    return zlib.crc32(f"events:{game_id}:{mode}".encode())


def _event_row(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "game_id": e.game_id,
        "mode": e.mode,
        "type": e.type,
        "session_id": e.session_id,
        "sequence": e.sequence,
        "body": e.body(),
        "created_at": e.created_at,
    }


_EVENT_COLUMNS = ["id", "game_id", "mode", "type", "session_id", "sequence", "body", "created_at"]
_INSERT_EVENT = prepared.insert_of(tables.events, _EVENT_COLUMNS)
_NOTIFY = Prepared(select(func.pg_notify(bindparam("channel", type_=Text), literal_column("''"))))
_LOCK_EVENTS = Prepared(select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger))))
# PostgreSQL: the events lock and the dispatchers' notice taken by the insert itself (the
# CTE runs before the rows are made), saving two round trips per transaction.
_GATE = select(
    func.pg_advisory_xact_lock(bindparam("lock_key", type_=BigInteger)).label("locked"),
    func.pg_notify(bindparam("channel", type_=Text), literal_column("''")).label("notified"),
).cte("gate")
_INSERT_EVENT_LOCKED = Prepared(
    insert(tables.events).from_select(
        _EVENT_COLUMNS,
        select(*[bindparam(name, type_=tables.events.c[name].type) for name in _EVENT_COLUMNS]).select_from(_GATE),
    )
)


class RowWithEvent:
    """An insert of one row of `table` (these columns) that commits together with one event:
    see `Database.insert_with_event`."""

    def __init__(self, table: Any, columns: list[str]) -> None:
        self.insert = prepared.insert_of(table, columns)
        self.in_one_statement = Prepared(_row_then_event(table, columns))


def _row_then_event(table: Any, columns: list[str]) -> Any:
    """PostgreSQL: the row, then the gate (the events lock and the dispatchers' notice), then
    the event, in one statement; the event's values are bound as `event__<column>`.

    Each part selects from the one before, so the events lock is taken after the row is
    written (and its counts, by BEFORE triggers: see migration count_triggers_before_rows)
    and before the event takes its position: the order every other transaction takes its
    locks in (rows, then the events lock just before commit), so none can deadlock with it.
    """
    written = (
        insert(table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        .returning(literal_column("1").label("one"))
        .cte("written")
    )
    gate = select(
        func.pg_advisory_xact_lock(bindparam("lock_key", type_=BigInteger)).label("locked"),
        func.pg_notify(bindparam("channel", type_=Text), literal_column("''")).label("notified"),
    ).select_from(written)
    event = select(*[bindparam(f"event__{name}", type_=tables.events.c[name].type) for name in _EVENT_COLUMNS])
    return insert(tables.events).from_select(_EVENT_COLUMNS, event.select_from(gate.cte("gate")))


class HeldTransaction:
    """One write transaction for a whole request, committed with the request's answer.

    While a request runs inside `Database.holding()`, each `Database.transaction()` it opens
    becomes a savepoint of this one transaction, begun at the first of them; nothing commits
    until `final()`, whose writes (the stored idempotent answer) commit in the same
    transaction as the state change they answer for. A crash before that commits neither.

    On SQLite the request's writes are one span of the group commit (group_commit.py), from
    its first write to `final()`: they run alone on the writer and commit with the batch.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: AsyncConnection | None = None
        self.tx: Any = None
        self.span: Span | None = None
        self.open = True
        self.outbox_changed = False
        self.events: list[Event] = []

    async def _connection(self) -> AsyncConnection:
        if self.conn is None:
            if self.db.group is not None:
                self.span = await self.db.group.open_span()
                self.conn = self.span.conn
            else:
                self.conn = await self.db.writer.connect()
                self.tx = await self.conn.begin()
        return self.conn

    @property
    def wrote(self) -> bool:
        return self.conn is not None

    @asynccontextmanager
    async def part(self) -> AsyncIterator[UnitOfWork]:
        """One `transaction()` block of the request: rolled back alone when it raises,
        committed only with the rest. The first block begins the transaction (should it
        raise, nothing else was written: the whole transaction is rolled back); later
        blocks are savepoints."""
        if self.conn is None:
            conn = await self._connection()
            try:
                uow = UnitOfWork(conn, self.db.dialect)
                yield uow
                await uow.flush_events()
            except BaseException as exc:
                await self._discard(exc)
                raise
        else:
            conn = self.conn
            async with conn.begin_nested():
                uow = UnitOfWork(conn, self.db.dialect)
                yield uow
                await uow.flush_events()
        self.outbox_changed |= uow.outbox_changed
        self.events += uow.events

    async def _discard(self, exc: BaseException) -> None:
        """Roll back what the request wrote; it may write again (a new transaction then)."""
        await self._undo(exc)
        self.events, self.outbox_changed = [], False

    @asynccontextmanager
    async def final(self) -> AsyncIterator[UnitOfWork]:
        """The last writes of the request; everything commits at the end of this block, or nothing."""
        self.open = False
        conn = await self._connection()
        try:
            uow = UnitOfWork(conn, self.db.dialect)
            yield uow
            await uow.flush_events()
        except BaseException as exc:
            await self._undo(exc)
            raise
        await self._commit(self.events + uow.events, self.outbox_changed or uow.outbox_changed)

    async def checkpoint(self) -> None:
        """Commit what the request wrote so far; later writes go on in a new held transaction."""
        if self.conn is None or not self.open:
            return
        events, self.events = self.events, []
        outbox_changed, self.outbox_changed = self.outbox_changed, False
        await self._commit(events, outbox_changed)

    async def _commit(self, events: list[Event], outbox_changed: bool) -> None:
        """Commit, and tell the process's watchers; on failure nothing was written."""
        span, self.span = self.span, None
        if span is not None:
            self.conn = None
            assert self.db.group is not None
            await self.db.group.close_span(span, events, outbox_changed)  # tells the watchers
            return
        try:
            await self.tx.commit()
        except BaseException:
            await self._undo(None)
            raise
        await self._close()
        self.db.committed(events, outbox_changed)

    async def rollback(self) -> None:
        """Undo every write of the request; later transactions of the request commit on their own."""
        self.open = False
        await self._undo(None)

    async def _undo(self, exc: BaseException | None) -> None:
        span, self.span = self.span, None
        if span is not None:
            self.conn = None
            assert self.db.group is not None
            await self.db.group.abort_span(span, exc or _RolledBack())
            return
        if self.tx is not None and self.tx.is_active:
            await self.tx.rollback()
        await self._close()

    async def _close(self) -> None:
        conn, self.conn, self.tx = self.conn, None, None
        if conn is not None:
            await conn.close()


class _RolledBack(Exception):
    """A held transaction given up without an error (the request ended before its answer)."""


_held: ContextVar[HeldTransaction | None] = ContextVar("toffeepay_held_transaction", default=None)


class CommitWatch:
    """`PRAGMA data_version` on a connection of its own: it changes whenever any other
    connection, in any process, commits. Costs microseconds, reads no table."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.version: int | None = None

    def changed(self) -> bool:
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        moved, self.version = version != self.version, version
        return moved

    def close(self) -> None:
        self.conn.close()


class Database:
    """The engines of one installation. SQLite gets one serialised writer; PostgreSQL a pool."""

    def __init__(self, url: str, *, pool_size: int = 10, keyring: Keyring | None = None) -> None:
        self.url = async_url(url)
        # Opens the secret columns (store/types.py Sealed); from the environment unless given.
        self.keyring = keyring or Keyring.from_env()
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            create_private_sqlite_file(self.url)
            # The one writer runs inline: its statements are short and already serialised.
            # Readers keep aiosqlite's threads, so a long scan never holds up the loop.
            self.writer = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE", pool_size=1, inline=True)
            self.reader = _sqlite_engine(self.url, begin="BEGIN", pool_size=pool_size)
            # Point reads by key (the API key on every request) run inline too.
            self.lookups = _sqlite_engine(self.url, begin="BEGIN", pool_size=2, inline=True)
            self.group: GroupCommit | None = GroupCommit(self, lambda conn: UnitOfWork(conn, "sqlite"))
        else:
            # No ping per checkout (a round trip, three inside asyncpg's transaction): a connection
            # a restart broke fails its one request with `unavailable` and invalidates the pool.
            self.writer = create_async_engine(self.url, pool_size=pool_size, max_overflow=pool_size)
            self.reader = self.writer
            self.lookups = self.writer
            self.group = None
        for engine in {self.writer, self.reader, self.lookups}:
            engine.sync_engine.dialect.toffeepay_keyring = self.keyring  # type: ignore[attr-defined]
        path = make_url(self.url).database
        self._file_path = path if self.dialect == "sqlite" and path and path != ":memory:" else None
        self._point_reader: prepared.Direct | None = None
        # SQLite's `PRAGMA data_version` as read in this turn of the event loop (keys_version).
        self._data_version: int | None = None
        self._pool_size = pool_size
        # asyncpg pools by use ("reads", "writes"), made on the running loop.
        self._pg_direct_pools: dict[str, Any] = {}
        self._pg_direct_loop: asyncio.AbstractEventLoop | None = None
        self._key_changes = KeyChanges(self._asyncpg_dsn()) if self.dialect == "postgresql" else None
        self._outbox_signals: set[asyncio.Event] = set()
        self._commit_watchers: list[Callable[[list[Event]], None]] = []

    def on_commit(self, watcher: Callable[[list[Event]], None]) -> None:
        """Call `watcher` with the events of each transaction of this process, once it committed."""
        self._commit_watchers.append(watcher)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """Commit everything written (state and events) or nothing.

        Inside `holding()` this is a savepoint of the request's held transaction instead.
        """
        held = self._open_held()
        if held is not None:
            async with held.part() as part:
                yield part
            return
        if self.group is not None:
            async with self.group.block() as uow:
                yield uow
            return
        async with self.writer.connect() as conn, conn.begin():
            uow = UnitOfWork(conn, self.dialect)
            yield uow
            await uow.flush_events()
            if entry := audit.take_pending():
                await audit.insert_entry(conn, entry)
        if entry:
            entry.written = True
        self.committed(uow.events, uow.outbox_changed)

    async def insert_with_event(self, row: RowWithEvent, values: dict[str, Any], event: Event) -> None:
        """Insert one row and its event: both commit, or neither.

        On PostgreSQL, outside a held transaction, this is one statement that PostgreSQL runs
        and commits atomically on its own: one round trip instead of four (BEGIN, the row,
        the event, COMMIT), and the per-game events lock is held only while PostgreSQL runs
        it and flushes its commit, never across a round trip to this process. Elsewhere it
        is a `transaction()` like any other write.
        """
        if self.group is not None and self._open_held() is None:
            # SQLite: the group commit's block itself, without transaction()'s layer around it.
            async with self.group.block() as uow:
                await prepared.execute(uow.conn, row.insert, values)
                uow.add_event(event)
            return
        if self.dialect != "postgresql":
            async with self.transaction() as uow:
                await prepared.execute(uow.conn, row.insert, values)
                uow.add_event(event)
            return
        params = dict(values)
        for name, value in _event_row(event).items():
            params[f"event__{name}"] = value
        params["lock_key"] = _events_lock_key(event.game_id, event.mode)
        params["channel"] = OUTBOX_CHANNEL
        if not self._commits_alone():
            # Part of a longer transaction: still one statement for the row and its event.
            async with self.transaction() as uow:
                await prepared.execute(uow.conn, row.in_one_statement, params)
                uow.add_inserted_event(event)
            return
        async with self._pg_direct("writes") as conn:
            await prepared.execute(conn, row.in_one_statement, params)
        self.committed([event], True)

    async def execute_alone(self, statement: Prepared, values: dict[str, Any]) -> int:
        """Run one statement that commits on its own; returns how many rows it changed.

        On PostgreSQL, outside a held transaction, PostgreSQL runs and commits it in one
        round trip instead of three (BEGIN, the statement, COMMIT). Elsewhere it is a
        `transaction()` of its own.
        """
        if self.dialect == "postgresql" and self._commits_alone():
            async with self._pg_direct("writes") as conn:
                return await prepared.execute(conn, statement, values)
        async with self.transaction() as uow:
            return await prepared.execute(uow.conn, statement, values)

    def committed(self, events: list[Event], outbox_changed: bool) -> None:
        """Tell this process's watchers and dispatchers about a commit."""
        if events:
            for watcher in self._commit_watchers:
                watcher(events)
        if outbox_changed:
            self.signal_outbox()

    @asynccontextmanager
    async def holding(self) -> AsyncIterator[HeldTransaction]:
        """Hold every write of this task (and the tasks it starts) in one transaction; see
        HeldTransaction. Whatever `final()` did not commit is rolled back at the end."""
        held = HeldTransaction(self)
        token = _held.set(held)
        try:
            yield held
        finally:
            _held.reset(token)
            await held.rollback()

    async def checkpoint(self) -> None:
        """Inside `holding()`, commit what the request wrote so far; elsewhere nothing to do.

        Called before work is handed to another system (a processor over the network), so no
        transaction stays open across the call and what the other system is told about exists.
        """
        held = _held.get()
        if held is not None and held.db is self:
            await held.checkpoint()

    def signal_outbox(self) -> None:
        for signal in self._outbox_signals:
            signal.set()

    def outbox_signal(self) -> asyncio.Event:
        """An event set after each commit in this process that gives dispatchers work."""
        signal = asyncio.Event()
        self._outbox_signals.add(signal)
        return signal

    def drop_outbox_signal(self, signal: asyncio.Event) -> None:
        self._outbox_signals.discard(signal)

    @property
    def file_path(self) -> str | None:
        """The SQLite database file (None on PostgreSQL or in memory)."""
        return self._file_path

    def commit_watch(self) -> CommitWatch | None:
        """On SQLite, a cheap way to notice commits of other processes; None elsewhere."""
        return None if self._file_path is None else CommitWatch(self._file_path)

    def _asyncpg_dsn(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def listen_outbox(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever any process commits outbox work (PostgreSQL), until cancelled."""
        import asyncpg

        conn = await asyncpg.connect(self._asyncpg_dsn())
        closed = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: closed.set())
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_args: wake())
            wake()  # whatever committed before we listened
            await closed.wait()
        finally:
            if not conn.is_closed():
                await conn.close(timeout=5)

    def _open_held(self) -> HeldTransaction | None:
        """The held transaction that takes this task's writes (see `holding()`), if any."""
        held = _held.get()
        return held if held is not None and held.db is self and held.open else None

    def _commits_alone(self) -> bool:
        """Whether a write here commits on its own: no held transaction takes it and no audit
        entry waits to be written with it."""
        return self._open_held() is None and audit.take_pending() is None

    def _held_writes(self) -> AsyncConnection | None:
        """The held transaction's connection once the request wrote: its reads must see its writes."""
        held = self._open_held()
        return None if held is None else held.conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        if (conn := self._held_writes()) is not None:
            yield conn
            return
        async with self.reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[AsyncConnection]:
        """For a read of a few rows by a unique key only: on SQLite it runs on the event loop."""
        if (conn := self._held_writes()) is not None:
            yield conn
            return
        async with self.lookups.connect() as conn:
            yield conn

    @asynccontextmanager
    async def point_read(self) -> AsyncIterator[prepared.Connection]:
        """For prepared reads of a row or two by key (the API key, a session by id), outside
        any transaction: on SQLite one connection of this process used on the event loop
        without a pool (a read never yields, so no two use it at once); on PostgreSQL an
        asyncpg pool of its own, without SQLAlchemy's connection layers."""
        if (conn := self._held_writes()) is not None:
            yield conn
            return
        if self.dialect == "postgresql":
            async with self._pg_direct("reads") as direct:
                yield direct
            return
        reader = self._sqlite_point_reader()
        if reader is None:
            async with self.lookups.connect() as pooled:
                yield pooled
            return
        yield reader

    @asynccontextmanager
    async def _pg_direct(self, use: str) -> AsyncIterator[prepared.Direct]:
        """A connection for single statements outside any explicit transaction, without
        SQLAlchemy's layers, from the asyncpg pool of its `use`: point reads ("reads") never
        wait for a connection behind inserts queued on a game's events lock ("writes")."""
        dialect = self.lookups.sync_engine.dialect
        try:
            acquired = (await self._pg_direct_pool(use)).acquire()
            raw = await acquired.__aenter__()
        except Exception as exc:
            raise prepared.translated_error(dialect, exc, "connect") from exc
        try:
            yield prepared.Direct(raw, dialect)
        finally:
            await acquired.__aexit__(None, None, None)

    async def _pg_direct_pool(self, use: str) -> Any:
        import asyncpg

        if self._pg_direct_loop is not asyncio.get_running_loop():
            self._pg_direct_pools, self._pg_direct_loop = {}, asyncio.get_running_loop()
        pool = self._pg_direct_pools.get(use)
        if pool is None:
            pool = self._pg_direct_pools[use] = await asyncpg.create_pool(
                self._asyncpg_dsn(), min_size=0, max_size=self._pool_size, reset=_keep_session_state
            )
        return pool

    def keys_version(self) -> int | None:
        """A number that changes whenever an API key may have been revoked or changed, by any
        process: a key read while it stayed the same is still as it was. On SQLite it is
        `PRAGMA data_version`, which moves at every commit of any other connection; on
        PostgreSQL the count of notices from the `api_keys` trigger (see key_changes.py).
        None when there is no such number (not listening yet, a database in memory)."""
        if self._key_changes is not None:
            return self._key_changes.version()
        if self._data_version is not None:
            return self._data_version
        reader = self._sqlite_point_reader()
        if reader is None:
            return None
        # Read once per turn of the event loop (about 20 µs a read while commits go on).
        # Forgetting it is queued before the read, so whatever uses it ran from the loop's
        # queue ahead of that: a request checked with it had arrived before the read, and a
        # change committed before the request arrived is in it.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: read every time
            return reader.raw.execute("PRAGMA data_version").fetchone()[0]
        loop.call_soon(self._forget_data_version)
        self._data_version = reader.raw.execute("PRAGMA data_version").fetchone()[0]
        return self._data_version

    def _forget_data_version(self) -> None:
        self._data_version = None

    def keys_changed(self) -> None:
        """This process committed a key's revocation or change: keys kept before stop counting
        at once here (other processes hear of it from the trigger's notice; on SQLite the
        commit itself moves `data_version`)."""
        self._data_version = None
        if self._key_changes is not None:
            self._key_changes.changed()

    def _sqlite_point_reader(self) -> prepared.Direct | None:
        if self._point_reader is None and self._file_path is not None:
            raw = sqlite3.connect(self._file_path, isolation_level=None, check_same_thread=False)
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            raw.execute("PRAGMA query_only=1")
            self._point_reader = prepared.Direct(raw, self.lookups.sync_engine.dialect)
        return self._point_reader

    async def dispose(self) -> None:
        if self._pg_direct_loop is asyncio.get_running_loop():
            for pool in self._pg_direct_pools.values():
                await pool.close()
        self._pg_direct_pools = {}
        if self._key_changes is not None:
            await self._key_changes.close()
        if self._point_reader is not None:
            self._point_reader.raw.close()
            self._point_reader = None
        if self.group is not None:
            await self.group.close()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        if self.lookups is not self.writer:
            await self.lookups.dispose()


async def _keep_session_state(_conn: Any) -> None:
    """The direct pool's reset on release. asyncpg's own runs a query (advisory unlock, CLOSE
    ALL, UNLISTEN, RESET ALL): a round trip more per statement. The direct connections never
    change their session's state (only transaction-scoped locks, no LISTEN, no SET), and an
    open transaction is still rolled back by asyncpg before this is called."""
