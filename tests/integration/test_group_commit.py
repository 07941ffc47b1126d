"""SQLite group commit (store/group_commit.py) and prepared statements (store/prepared.py):
each block of a shared commit is answered only once its writes are on disk, and a failing
block takes nothing else with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from toffeepay_server.domain.clock import system_clock
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store import games as game_store
from toffeepay_server.store import prepared, tables
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ServiceContext]:
    url = f"sqlite:///{tmp_path / 'group.db'}"
    upgrade(url)
    context = ServiceContext(db=Database(url), public_url="http://127.0.0.1:1")
    yield context
    await context.db.dispose()


def _path(ctx: ServiceContext) -> str:
    path = ctx.db.file_path
    assert path is not None
    return path


def _games_on_disk(ctx: ServiceContext) -> set[str]:
    """What another connection (another process) sees committed."""
    other = sqlite3.connect(_path(ctx))
    try:
        return {row[0] for row in other.execute("SELECT game_id FROM games")}
    finally:
        other.close()


async def _insert_game(ctx: ServiceContext, game_id: str, *, fail: bool = False) -> set[str]:
    """Insert a game in a transaction; returns what another connection sees once it returned."""
    async with ctx.db.transaction() as uow:
        await game_store.insert_game(uow.conn, game_id, system_clock())
        if fail:
            raise ValueError("refused after writing")
    return _games_on_disk(ctx)


async def test_concurrent_transactions_share_commits_and_each_is_answered_after_its_own(
    ctx: ServiceContext,
) -> None:
    seen = await asyncio.gather(*(_insert_game(ctx, f"game_{i}") for i in range(20)))
    for i, visible in enumerate(seen):
        assert f"game_{i}" in visible  # committed before its caller went on
    assert _games_on_disk(ctx) == {f"game_{i}" for i in range(20)}


async def test_a_batch_commits_once(ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch) -> None:
    group = ctx.db.group
    assert group is not None
    commits: list[int] = []
    real_commit = type(group)._commit

    async def counting_commit(self: object) -> None:
        commits.append(len(group.waiting))
        await real_commit(group)

    monkeypatch.setattr(type(group), "_commit", counting_commit)
    await asyncio.gather(*(_insert_game(ctx, f"game_{i}") for i in range(10)))
    assert sum(commits) == 10
    assert len([n for n in commits if n]) < 10  # at least two blocks shared a commit


async def test_a_failing_block_rolls_back_alone(ctx: ServiceContext) -> None:
    results = await asyncio.gather(
        _insert_game(ctx, "kept_1"),
        _insert_game(ctx, "refused", fail=True),
        _insert_game(ctx, "kept_2"),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert _games_on_disk(ctx) == {"kept_1", "kept_2"}


async def test_a_large_failing_block_rolls_back_alone_with_its_journal_in_memory(ctx: ServiceContext) -> None:
    """A block's savepoint journal (the pages it changed, kept for ROLLBACK TO) stays in memory,
    however many pages the block touched, and still undoes that block alone."""

    async def large(fail: bool) -> None:
        async with ctx.db.transaction() as uow:
            for i in range(1000):  # far more than the 64 KiB SQLite keeps in memory by default
                await game_store.insert_game(uow.conn, f"large_{fail}_{i:03}_" + "x" * 40, system_clock())
            if fail:
                raise ValueError("refused after writing")

    async with ctx.db.transaction() as uow:
        assert (await uow.conn.execute(text("PRAGMA temp_store"))).scalar_one() == 2  # MEMORY
    results = await asyncio.gather(
        _insert_game(ctx, "kept_1"), large(fail=True), large(fail=False), return_exceptions=True
    )
    assert isinstance(results[1], ValueError)
    on_disk = _games_on_disk(ctx)
    assert "kept_1" in on_disk
    assert not any(g.startswith("large_True") for g in on_disk)
    assert sum(g.startswith("large_False") for g in on_disk) == 1000


async def test_a_failed_block_alone_leaves_no_transaction_open(ctx: ServiceContext) -> None:
    with pytest.raises(ValueError):
        await _insert_game(ctx, "refused", fail=True)
    await asyncio.sleep(0.05)
    # Another process can take the write lock at once: nothing holds it.
    other = sqlite3.connect(_path(ctx), isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_failed_commit_fails_every_block_of_its_batch_and_writes_nothing(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toffeepay_server.store import group_commit

    async def refused(conn: object, tx: object) -> None:
        raise sqlalchemy.exc.OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(group_commit, "commit", refused)
    results = await asyncio.gather(*(_insert_game(ctx, f"game_{i}") for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, sqlalchemy.exc.OperationalError) for r in results)
    monkeypatch.undo()
    assert _games_on_disk(ctx) == set()
    # The writer recovers: the next transaction commits.
    assert "after" in await _insert_game(ctx, "after")


async def test_sqlite_runs_with_full_sync(ctx: ServiceContext) -> None:
    async with ctx.db.transaction() as uow:
        level = (await uow.conn.execute(text("PRAGMA synchronous"))).scalar_one()
    assert level == 2  # FULL: the WAL is synced at every commit


async def test_prepared_errors_are_sqlalchemy_errors(ctx: ServiceContext) -> None:
    await _insert_game(ctx, "twice")
    insert_game = prepared.insert_of(tables.games, ["game_id", "created_at"])
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with ctx.db.transaction() as uow:
            await prepared.execute(uow.conn, insert_game, {"game_id": "twice", "created_at": system_clock()})
    assert _games_on_disk(ctx) == {"twice"}
