"""An API key found once is kept while no key changed since (Database.keys_version): on SQLite
while no other connection committed, on PostgreSQL while no key-change notice arrived. A
revoked or rolled key must stop working at once, whichever process changed it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import ENGINES, make_database
from toffeepay_server.domain.keys import Mode
from toffeepay_server.services import games
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


@pytest.fixture
async def ctx(url: str) -> AsyncIterator[ServiceContext]:
    upgrade(url)
    context = ServiceContext(db=Database(url), public_url="http://127.0.0.1:1")
    yield context
    await context.db.dispose()


async def _keeping(ctx: ServiceContext) -> None:
    """Wait until the database can vouch for kept keys (PostgreSQL: its listener is up)."""
    for _ in range(200):
        if ctx.db.keys_version() is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("keys are never kept")


async def _revoked_elsewhere(ctx: ServiceContext, key: str) -> None:
    other = ServiceContext(db=Database(ctx.db.url), public_url="http://127.0.0.1:1")
    try:
        assert await games.revoke_key(other, key) == 1
    finally:
        await other.db.dispose()


async def test_a_key_is_kept_while_no_key_changes(ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch) -> None:
    game = await games.create_game(ctx, "kept")
    await _keeping(ctx)
    # The first use is recorded (a write): on SQLite that commit moves the version once.
    for _ in range(2):
        assert await games.authenticate(ctx, game.sandbox_api_key) is not None
    reads = 0
    real = games.store.key_by_hash

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(games.store, "key_by_hash", counted)
    for _ in range(5):
        assert await games.authenticate(ctx, game.sandbox_api_key) is not None
    assert reads == 0


async def test_a_key_revoked_by_another_process_fails_on_the_next_request(ctx: ServiceContext) -> None:
    game = await games.create_game(ctx, "revoked")
    await _keeping(ctx)
    key = game.sandbox_api_key
    assert await games.authenticate(ctx, key) is not None
    before = ctx.db.keys_version()
    await _revoked_elsewhere(ctx, key)
    if ctx.db.is_postgres:
        # The notice arrives on the listening connection within milliseconds of the commit.
        for _ in range(100):
            if ctx.db.keys_version() != before:
                break
            await asyncio.sleep(0.01)
    assert ctx.db.keys_version() != before
    assert await games.authenticate(ctx, key) is None


async def test_a_rolled_key_stops_at_once(ctx: ServiceContext) -> None:
    game = await games.create_game(ctx, "rolled")
    await _keeping(ctx)
    old = game.live_api_key
    assert await games.authenticate(ctx, old) is not None
    new = await games.roll_key(ctx, "rolled", Mode.LIVE)
    assert await games.authenticate(ctx, old) is None
    assert await games.authenticate(ctx, new) is not None


async def test_sqlite_reads_the_version_once_per_turn_of_the_loop(ctx: ServiceContext) -> None:
    """On SQLite the version is read once per turn of the event loop: what committed before the
    loop takes the next request (here: the next turn) is seen by it."""
    if ctx.db.is_postgres:
        pytest.skip("SQLite's data_version")
    game = await games.create_game(ctx, "per_turn")
    key = game.sandbox_api_key
    assert await games.authenticate(ctx, key) is not None
    assert await games.authenticate(ctx, key) is not None
    before = ctx.db.keys_version()
    # Another process revokes the key, within this turn of the loop.
    path = ctx.db.file_path
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("UPDATE api_keys SET revoked_at = 1 WHERE game_id = 'per_turn'")
    finally:
        other.close()
    await asyncio.sleep(0)
    assert ctx.db.keys_version() != before
    assert await games.authenticate(ctx, key) is None
