"""The dispatcher's prepared statements on both engines: a list bound as one parameter
(`prepared.among`) matches as an IN list would, whatever its length, inside a transaction and
outside one; an endpoint's health moves on in one statement for every case."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import ENGINES, make_database
from toffeepay_server.domain.events import Event
from toffeepay_server.domain.keys import Mode
from toffeepay_server.services import games, webhooks
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store import prepared, tables
from toffeepay_server.store import webhooks as endpoint_store
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade
from toffeepay_server.store.prepared import Prepared, among

GAMES = [f"game_{i}" for i in range(6)]

_GAMES_AMONG = Prepared(
    lambda engine: (
        select(tables.games.c.game_id)
        .where(among(engine, tables.games.c.game_id, "ids"))
        .order_by(tables.games.c.game_id)
    )
)
_GAMES_NOT_AMONG = Prepared(
    lambda engine: (
        select(tables.games.c.game_id)
        .where(among(engine, tables.games.c.game_id, "ids", negate=True))
        .order_by(tables.games.c.game_id)
    )
)
_EVENTS_AT = Prepared(
    lambda engine: (
        select(tables.events.c.position)
        .where(among(engine, tables.events.c.position, "positions"))
        .order_by(tables.events.c.position)
    )
)


@pytest.fixture(params=ENGINES)
async def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServiceContext]:
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    context = ServiceContext(db=Database(url), public_url="http://pay.test", private_webhook_targets="sandbox")
    yield context
    await context.db.dispose()
    next(made, None)


async def _both_ways(ctx: ServiceContext, statement: Prepared, values: dict[str, Any]) -> list[Any]:
    """The rows inside a write transaction (on the driver) and from a read (on SQLite through
    SQLAlchemy on a reader thread); both must agree."""
    async with ctx.db.transaction() as uow:
        written = [row[0] for row in await prepared.fetch_all(uow.conn, statement, values)]
    async with ctx.db.read() as conn:
        read = [row[0] for row in await prepared.fetch_all(conn, statement, values)]
    assert written == read
    return written


async def test_a_list_of_one_or_many_strings_matches_as_an_in_list(ctx: ServiceContext) -> None:
    for game_id in GAMES:
        await games.create_game(ctx, game_id)
    assert await _both_ways(ctx, _GAMES_AMONG, {"ids": ["game_3"]}) == ["game_3"]
    many = ["game_5", "game_1", "nobody", "game_4", "game_1"]
    assert await _both_ways(ctx, _GAMES_AMONG, {"ids": many}) == ["game_1", "game_4", "game_5"]
    assert await _both_ways(ctx, _GAMES_AMONG, {"ids": []}) == []
    # Text that means something to SQL or JSON is only a value.
    assert await _both_ways(ctx, _GAMES_AMONG, {"ids": ["game_1' OR '1'='1", '"]']}) == []

    assert await _both_ways(ctx, _GAMES_NOT_AMONG, {"ids": ["game_3"]}) == [g for g in GAMES if g != "game_3"]
    assert await _both_ways(ctx, _GAMES_NOT_AMONG, {"ids": many}) == ["game_0", "game_2", "game_3"]
    assert await _both_ways(ctx, _GAMES_NOT_AMONG, {"ids": []}) == GAMES


async def test_a_list_of_integers_matches_as_an_in_list(ctx: ServiceContext) -> None:
    await games.create_game(ctx, "game_0")
    now = datetime.now(UTC)
    async with ctx.db.transaction() as uow:
        for n in range(5):
            uow.add_event(Event(str(uuid.uuid4()), "session.created", "game_0", "sandbox", None, None, now, {"n": n}))
    async with ctx.db.read() as conn:
        positions = [row[0] for row in await conn.execute(select(tables.events.c.position).order_by("position"))]
    assert await _both_ways(ctx, _EVENTS_AT, {"positions": [positions[2]]}) == [positions[2]]
    wanted = [positions[4], positions[0], positions[4], 10**12]
    assert await _both_ways(ctx, _EVENTS_AT, {"positions": wanted}) == [positions[0], positions[4]]


async def _health(ctx: ServiceContext, endpoint_id: str) -> tuple[Any, ...]:
    async with ctx.db.read() as conn:
        found = await endpoint_store.endpoints_by_id(conn, [endpoint_id])
    e = found[endpoint_id]
    return e.last_success_at, e.last_failure_at, e.failing_since, e.failing_reported_at


async def test_health_moves_on_in_one_statement_for_every_case(ctx: ServiceContext) -> None:
    created = await games.create_game(ctx, "game_0")
    assert created is not None
    a, _ = await webhooks.create_endpoint(ctx, game_id="game_0", mode=Mode.SANDBOX, url="http://127.0.0.1:9/a")
    b, _ = await webhooks.create_endpoint(ctx, game_id="game_0", mode=Mode.SANDBOX, url="http://127.0.0.1:9/b")
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    t = [t0 + timedelta(minutes=n) for n in range(6)]

    async def note(*health: endpoint_store.Health) -> None:
        async with ctx.db.transaction() as uow:
            await endpoint_store.record_health(uow.conn, list(health))

    # Failures only: a run of failures starts; the other endpoint succeeds in the same batch.
    await note(
        endpoint_store.Health(a.id, last_success_at=None, last_failure_at=t[1], failing_from=t[0]),
        endpoint_store.Health(b.id, last_success_at=t[1], last_failure_at=None, failing_from=None),
    )
    assert await _health(ctx, a.id) == (None, t[1], t[0], None)
    assert await _health(ctx, b.id) == (t[1], None, None, None)
    # The run was reported; more failures keep its start and the report.
    async with ctx.db.transaction() as uow:
        await uow.conn.execute(
            tables.webhook_endpoints.update()
            .where(tables.webhook_endpoints.c.id == a.id)
            .values(failing_reported_at=t[2])
        )
    await note(endpoint_store.Health(a.id, last_success_at=None, last_failure_at=t[3], failing_from=t[3]))
    assert await _health(ctx, a.id) == (None, t[3], t[0], t[2])
    # A success after the failures ends the run (and its report); the last failure stays known.
    await note(endpoint_store.Health(a.id, last_success_at=t[4], last_failure_at=None, failing_from=None))
    assert await _health(ctx, a.id) == (t[4], t[3], None, None)
    # A batch whose last success came before a new failure starts a new run.
    await note(endpoint_store.Health(a.id, last_success_at=t[4], last_failure_at=t[5], failing_from=t[5]))
    assert await _health(ctx, a.id) == (t[4], t[5], t[5], None)
    assert await _health(ctx, b.id) == (t[1], None, None, None)
