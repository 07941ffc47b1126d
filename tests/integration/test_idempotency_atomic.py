"""An idempotent request's writes and its stored answer commit in one transaction (both engines)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import ENGINES, make_database
from tests.support import both_modes_processors
from toffeepay_server.domain.sessions import new_session
from toffeepay_server.services import games, sessions
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store import idempotency, tables
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade

PROCESSORS = both_modes_processors()


class Crash(Exception):
    """The process dies here."""


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    yield url
    next(made, None)


@pytest.fixture
async def ctx(db_url: str) -> AsyncIterator[ServiceContext]:
    context = ServiceContext(db=Database(db_url), public_url="http://pay.test")
    yield context
    await context.db.dispose()


async def _principal(ctx: ServiceContext):  # type: ignore[no-untyped-def]
    created = await games.create_game(ctx, f"game_{uuid.uuid4().hex[:10]}")
    principal = await games.authenticate(ctx, created.sandbox_api_key)
    assert principal is not None
    return principal


async def _create(ctx: ServiceContext, principal, user_id: str):  # type: ignore[no-untyped-def]
    new = new_session(
        game_id=principal.game_id,
        user_id=user_id,
        title="Gems",
        price=100,
        currency="USD",
        image=None,
        return_url=None,
        metadata={},
        expires_at=None,
        live=False,
        now=datetime.now(UTC),
    )
    return await sessions.create_session(ctx, principal, new, processors=PROCESSORS)


async def _claim(ctx: ServiceContext, api_key_id: str, key: str, owner: str, lease: timedelta) -> None:
    async with ctx.db.transaction() as uow:
        assert (
            await idempotency.claim(
                uow.conn,
                ctx.db.dialect,
                api_key_id=api_key_id,
                key=key,
                request_hash="h",
                owner=owner,
                now=datetime.now(UTC),
                lease=lease,
            )
            is None
        )


async def _count(db: Database, user_id: str) -> int:
    """Counted on a connection of its own, as another process would see it."""
    async with db.reader.connect() as conn:
        query = select(func.count()).select_from(tables.sessions).where(tables.sessions.c.user_id == user_id)
        return (await conn.execute(query)).scalar_one()


async def _record(db: Database, api_key_id: str, key: str):  # type: ignore[no-untyped-def]
    async with db.reader.connect() as conn:
        return await idempotency.peek(conn, api_key_id=api_key_id, key=key)


async def test_a_crash_before_the_answer_leaves_nothing_done(ctx: ServiceContext) -> None:
    principal = await _principal(ctx)
    await _claim(ctx, principal.api_key_id, "k1", "owner-1", timedelta(seconds=60))
    with pytest.raises(Crash):
        async with ctx.db.holding():
            created = await _create(ctx, principal, "held")
            # The request reads its own write; nobody else sees it yet.
            assert (await sessions.get_session(ctx, principal, created.id)).id == created.id
            assert await _count(ctx.db, "held") == 0
            raise Crash
    assert await _count(ctx.db, "held") == 0
    record = await _record(ctx.db, principal.api_key_id, "k1")
    assert record is not None and record.state == "running"  # a retry takes it over once the lease ends


async def test_the_answer_commits_with_the_change(ctx: ServiceContext) -> None:
    principal = await _principal(ctx)
    await _claim(ctx, principal.api_key_id, "k2", "owner-2", timedelta(seconds=60))
    async with ctx.db.holding() as held:
        created = await _create(ctx, principal, "answered")
        async with held.final() as uow:
            await idempotency.finish(
                uow.conn,
                api_key_id=principal.api_key_id,
                key="k2",
                owner="owner-2",
                status=200,
                headers=[],
                body=created.id.encode(),
            )
            assert await _count(ctx.db, "answered") == 0  # not yet committed, answer and change alike
    assert await _count(ctx.db, "answered") == 1
    record = await _record(ctx.db, principal.api_key_id, "k2")
    assert record is not None and record.state == "done"
    assert record.response_body == created.id.encode()


async def test_a_run_taken_over_after_its_lease_rolls_back(ctx: ServiceContext) -> None:
    principal = await _principal(ctx)
    await _claim(ctx, principal.api_key_id, "k3", "slow", timedelta(seconds=-1))  # lease already over
    await _claim(ctx, principal.api_key_id, "k3", "retry", timedelta(seconds=60))  # so a retry takes it over
    async with ctx.db.holding() as held:
        await _create(ctx, principal, "slow")  # the slow run goes on, unaware
        with pytest.raises(idempotency.LostClaim):
            async with held.final() as uow:
                await idempotency.finish(
                    uow.conn,
                    api_key_id=principal.api_key_id,
                    key="k3",
                    owner="slow",
                    status=200,
                    headers=[],
                    body=b"x",
                )
    assert await _count(ctx.db, "slow") == 0
    record = await _record(ctx.db, principal.api_key_id, "k3")
    assert record is not None and record.state == "running"


async def test_a_checkpoint_commits_what_was_written_before_a_call_elsewhere(ctx: ServiceContext) -> None:
    """Before a processor is called over the network, what the request wrote commits (and no
    transaction waits on the network); what it writes afterwards still commits with the answer."""
    principal = await _principal(ctx)
    with pytest.raises(Crash):
        async with ctx.db.holding():
            await _create(ctx, principal, "before-call")
            await ctx.db.checkpoint()
            assert await _count(ctx.db, "before-call") == 1  # committed: the processor may be told
            await _create(ctx, principal, "after-call")
            raise Crash
    assert await _count(ctx.db, "before-call") == 1
    assert await _count(ctx.db, "after-call") == 0
    await ctx.db.checkpoint()  # outside a held request: nothing to do
