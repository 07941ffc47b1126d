"""Engines and the unit of work: one transaction that writes state and its events together."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..domain.events import Event
from . import tables

SQLITE_BUSY_TIMEOUT_MS = 10_000


def async_url(url: str) -> str:
    """Accept the URLs operators write and pick the async driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)

    @sa_event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours to send.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa_event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


@dataclass
class UnitOfWork:
    """A write transaction. Events added here are inserted just before it commits."""

    conn: AsyncConnection
    dialect: str
    events: list[Event] = field(default_factory=list)

    def add_event(self, event: Event) -> None:
        self.events.append(event)

    async def flush_events(self) -> None:
        if not self.events:
            return
        if self.dialect == "postgresql":
            # Serialise event inserts per game and mode until commit, so event positions
            # commit in order and an `after` cursor never skips a late-committing row.
            for scope in sorted({(e.game_id, e.mode) for e in self.events}):
                lock_key = zlib.crc32(f"events:{scope[0]}:{scope[1]}".encode())
                await self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
        await self.conn.execute(
            insert(tables.events),
            [
                {
                    "id": e.id,
                    "game_id": e.game_id,
                    "mode": e.mode,
                    "type": e.type,
                    "session_id": e.session_id,
                    "sequence": e.sequence,
                    "body": e.body(),
                    "created_at": e.created_at,
                }
                for e in self.events
            ],
        )


class Database:
    """The engines of one installation. SQLite gets one serialised writer; PostgreSQL a pool."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            self.writer = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.reader = _sqlite_engine(self.url, begin="BEGIN", pool_size=pool_size)
        else:
            self.writer = create_async_engine(self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            self.reader = self.writer

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """Commit everything written (state and events) or nothing."""
        async with self.writer.connect() as conn:
            async with conn.begin():
                uow = UnitOfWork(conn, self.dialect)
                yield uow
                await uow.flush_events()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
