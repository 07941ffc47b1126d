"""A new session and its `session.created` event commit together or not at all, and (on
PostgreSQL, where they are one statement outside any explicit transaction) the events of one
game still commit in the order of their positions."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.conftest import ENGINES, make_database
from tests.support import both_modes_processors
from toffeepay_server.domain import events as event_types
from toffeepay_server.domain import ids
from toffeepay_server.domain.sessions import new_session
from toffeepay_server.services import games, sessions
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store import sessions as session_store
from toffeepay_server.store import tables
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade

PROCESSORS = both_modes_processors()


@pytest.fixture(params=ENGINES)
async def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServiceContext]:
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    context = ServiceContext(db=Database(url), public_url="http://pay.test")
    yield context
    await context.db.dispose()
    next(made, None)


async def _principal(ctx: ServiceContext) -> Any:
    created = await games.create_game(ctx, f"game_{uuid.uuid4().hex[:10]}")
    principal = await games.authenticate(ctx, created.sandbox_api_key)
    assert principal is not None
    return principal


async def _create(ctx: ServiceContext, principal: Any) -> Any:
    new = new_session(
        game_id=principal.game_id,
        user_id="player_1",
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


def _another(ctx: ServiceContext, session: Any) -> tuple[Any, event_types.Event]:
    """A second session like `session`, and its `session.created` event."""
    other = dataclasses.replace(session, id=ctx.new_id(ids.SESSION))
    now = datetime.now(UTC)
    return other, sessions.session_event(ctx, other, event_types.SESSION_CREATED, None, now)


async def _events_of(ctx: ServiceContext, session_id: str) -> list[tuple[int, str]]:
    async with ctx.db.read() as conn:
        stmt = select(tables.events.c.position, tables.events.c.type).where(tables.events.c.session_id == session_id)
        return [tuple(row) for row in await conn.execute(stmt)]  # type: ignore[misc]


async def _sessions_with_id(ctx: ServiceContext, session_id: str) -> int:
    async with ctx.db.read() as conn:
        stmt = select(func.count()).select_from(tables.sessions).where(tables.sessions.c.id == session_id)
        return int((await conn.execute(stmt)).scalar_one())


async def test_a_session_is_stored_with_its_created_event(ctx: ServiceContext) -> None:
    principal = await _principal(ctx)
    session = await _create(ctx, principal)
    assert await _sessions_with_id(ctx, session.id) == 1
    assert [kind for _, kind in await _events_of(ctx, session.id)] == ["session.created"]


async def test_when_the_event_cannot_be_stored_neither_is_the_session(ctx: ServiceContext) -> None:
    principal = await _principal(ctx)
    first = await _create(ctx, principal)
    [(_, _)] = await _events_of(ctx, first.id)
    async with ctx.db.read() as conn:
        stmt = select(tables.events.c.id).where(tables.events.c.session_id == first.id)
        taken_id = (await conn.execute(stmt)).scalar_one()
    second, created = _another(ctx, first)
    clashing = dataclasses.replace(created, id=taken_id)  # an event id already stored

    with pytest.raises(IntegrityError):
        await session_store.insert_session(ctx.db, second, clashing)

    assert await _sessions_with_id(ctx, second.id) == 0
    assert await _events_of(ctx, second.id) == []


@pytest.mark.parametrize("ctx", ["postgresql"], indirect=True)
async def test_events_of_one_game_commit_in_the_order_of_their_positions(ctx: ServiceContext) -> None:
    """A session created while another transaction of its game holds an uncommitted event waits
    for it, so a reader never sees the later position before the earlier one; other games
    are not held up."""
    principal = await _principal(ctx)
    other_game = await _principal(ctx)
    template = await _create(ctx, principal)
    other_template = await _create(ctx, other_game)
    earlier, earlier_event = _another(ctx, template)
    later, later_event = _another(ctx, template)
    elsewhere, elsewhere_event = _another(ctx, other_template)

    async with ctx.db.holding() as held:
        # Inside a held transaction the insert is part of it: written, not committed.
        await session_store.insert_session(ctx.db, earlier, earlier_event)
        outside = contextvars.Context()  # tasks outside the held transaction
        waiting = asyncio.create_task(session_store.insert_session(ctx.db, later, later_event), context=outside)
        other = asyncio.create_task(session_store.insert_session(ctx.db, elsewhere, elsewhere_event), context=outside)
        await asyncio.wait_for(other, 10)  # another game's session is not held up
        await asyncio.sleep(0.3)
        assert not waiting.done(), "a later event of the same game committed before an earlier one"
        async with held.final():
            pass
    await asyncio.wait_for(waiting, 10)

    [(earlier_position, _)] = await _events_of(ctx, earlier.id)
    [(later_position, _)] = await _events_of(ctx, later.id)
    assert earlier_position < later_position
    assert await _sessions_with_id(ctx, later.id) == 1


@pytest.mark.parametrize("ctx", ["postgresql"], indirect=True)
async def test_reads_do_not_wait_behind_inserts_queued_on_a_games_events_lock(ctx: ServiceContext) -> None:
    """Polling for a session's status goes on while a game's new sessions wait for its events
    lock, even when those hold every connection inserts may use."""
    principal = await _principal(ctx)
    template = await _create(ctx, principal)
    db = Database(ctx.db.url, pool_size=2)
    outside = contextvars.Context()
    try:
        async with ctx.db.holding() as held:
            earlier, earlier_event = _another(ctx, template)
            await session_store.insert_session(ctx.db, earlier, earlier_event)  # holds the lock
            queued = [
                asyncio.create_task(session_store.insert_session(db, *_another(ctx, template)), context=outside)
                for _ in range(4)
            ]
            await asyncio.sleep(0.3)
            assert not any(task.done() for task in queued)

            async def poll() -> Any:
                async with db.point_read() as conn:
                    return await session_store.status_of(
                        conn, template.id, game_id=principal.game_id, mode=principal.mode.value
                    )

            assert await asyncio.wait_for(asyncio.create_task(poll(), context=outside), 5) is not None
            async with held.final():
                pass
        await asyncio.wait_for(asyncio.gather(*queued), 10)
    finally:
        await db.dispose()


@pytest.mark.parametrize("commit", [True, False])
async def test_inside_a_held_transaction_the_session_and_its_event_commit_with_it(
    ctx: ServiceContext, commit: bool
) -> None:
    """What an Idempotency-Key request does: the insert commits with the request's answer, or
    neither is written; the event is stored once and told to the process's watchers once."""
    principal = await _principal(ctx)
    session, created = _another(ctx, await _create(ctx, principal))
    told: list[str] = []
    ctx.db.on_commit(lambda events: told.extend(e.id for e in events))
    async with ctx.db.holding() as held:
        await session_store.insert_session(ctx.db, session, created)
        if commit:
            async with held.final():
                pass
    assert await _sessions_with_id(ctx, session.id) == (1 if commit else 0)
    assert [kind for _, kind in await _events_of(ctx, session.id)] == (["session.created"] if commit else [])
    assert told == ([created.id] if commit else [])


@pytest.mark.parametrize("ctx", ["postgresql"], indirect=True)
async def test_new_sessions_and_cancellations_of_one_game_at_once_never_deadlock(ctx: ServiceContext) -> None:
    """A new session is one statement; a cancellation changes its row (and the game's counts)
    and then appends its event. Both take their locks in the same order: rows, then the
    game's events lock."""
    principal = await _principal(ctx)
    pending = [await _create(ctx, principal) for _ in range(60)]
    busy = ServiceContext(db=Database(ctx.db.url, pool_size=20), public_url="http://pay.test")
    try:
        results = await asyncio.gather(
            *[sessions.cancel_session(busy, principal, s.id) for s in pending],
            *[_create(busy, principal) for _ in range(60)],
            return_exceptions=True,
        )
    finally:
        await busy.db.dispose()
    assert [repr(r) for r in results if isinstance(r, BaseException)] == []
    async with ctx.db.read() as conn:
        counted = await conn.execute(
            select(tables.session_counts.c.status, func.sum(tables.session_counts.c.n))
            .where(tables.session_counts.c.game_id == principal.game_id)
            .group_by(tables.session_counts.c.status)
        )
        assert {status: int(n) for status, n in counted if n} == {"pending": 60, "cancelled": 60}
