"""The SQLite writer and key lookups run on the event loop (store/sqlite_inline.py).

They must behave as aiosqlite did: wait for another process's write lock without blocking
the loop, give up after the busy timeout with the usual error, and commit or roll back
exactly as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from toffeepay_server.services import games
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store import database
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ServiceContext]:
    url = f"sqlite:///{tmp_path / 'inline.db'}"
    upgrade(url)
    context = ServiceContext(db=Database(url), public_url="http://127.0.0.1:1")
    # As in a running server: the writer's connection is open (and the database in WAL mode).
    async with context.db.transaction():
        pass
    yield context
    await context.db.dispose()


def _other_process_writer(ctx: ServiceContext) -> sqlite3.Connection:
    """Another connection (as another process would have) holding the write lock."""
    path = ctx.db.url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def _count_games(ctx: ServiceContext) -> int:
    async with ctx.db.read() as conn:
        return (await conn.execute(text("SELECT COUNT(*) FROM games"))).scalar_one()


async def test_a_locked_database_is_waited_for_without_blocking_the_loop(ctx: ServiceContext) -> None:
    other = _other_process_writer(ctx)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    create = asyncio.create_task(games.create_game(ctx, "waits_for_lock"))
    try:
        await asyncio.sleep(0.3)
        assert not create.done(), "the write must wait while another connection holds the lock"
        assert ticks >= 10, "the event loop must keep running while the write waits"
        other.execute("COMMIT")
        created = await asyncio.wait_for(create, 5)
    finally:
        ticking.cancel()
        other.close()
    assert created.sandbox_api_key.startswith("sk_test_")
    assert await games.authenticate(ctx, created.sandbox_api_key) is not None
    assert await _count_games(ctx) == 1


async def test_a_lock_held_past_the_busy_timeout_fails_as_before(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    other = _other_process_writer(ctx)
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError, match="database is locked"):
            await games.create_game(ctx, "never_gets_the_lock")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await _count_games(ctx) == 0
    await games.create_game(ctx, "gets_it_now")  # the writer is usable again
    assert await _count_games(ctx) == 1


async def test_a_failed_transaction_leaves_nothing_and_the_writer_usable(ctx: ServiceContext) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with ctx.db.transaction() as uow:
            await uow.conn.execute(
                text("INSERT INTO games (game_id, created_at) VALUES ('half', '2026-01-01T00:00:00.000000Z')")
            )
            raise Boom
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with ctx.db.transaction() as uow:
            await uow.conn.execute(
                text("INSERT INTO games (game_id, created_at) VALUES ('dup', '2026-01-01T00:00:00.000000Z')")
            )
            await uow.conn.execute(
                text("INSERT INTO games (game_id, created_at) VALUES ('dup', '2026-01-01T00:00:00.000000Z')")
            )
    assert await _count_games(ctx) == 0
    await games.create_game(ctx, "after_failures")
    assert await _count_games(ctx) == 1


async def test_a_revoked_key_stops_working_at_once(ctx: ServiceContext) -> None:
    created = await games.create_game(ctx, "revoked_at_once")
    assert await games.authenticate(ctx, created.live_api_key) is not None
    assert await games.revoke_key(ctx, created.live_api_key) == 1
    assert await games.authenticate(ctx, created.live_api_key) is None
    assert await games.authenticate(ctx, created.sandbox_api_key) is not None
