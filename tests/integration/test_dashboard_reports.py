"""The dashboard's daily totals on both engines, with a manual clock: closed days are counted
once and kept, the open day is counted live, and other games and modes never mix in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ENGINES, make_database
from tests.support import both_modes_processors
from toffeepay_server.domain.clock import ManualClock
from toffeepay_server.domain.keys import Mode, Principal
from toffeepay_server.domain.payments import Method, Outcome
from toffeepay_server.domain.sessions import new_session
from toffeepay_server.services import disputes, games, payments, reports, sessions
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade

PROCESSORS = both_modes_processors()


@pytest.fixture(params=ENGINES)
def quiet_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    yield url
    next(made, None)


@pytest.fixture
async def ctx(quiet_db: str) -> AsyncIterator[ServiceContext]:
    clock = ManualClock(datetime(2030, 3, 10, 12, 0, tzinfo=UTC))
    context = ServiceContext(db=Database(quiet_db), public_url="http://pay.test", clock=clock)
    yield context
    await context.db.dispose()


async def _game(ctx: ServiceContext) -> tuple[Principal, Principal]:
    created = await games.create_game(ctx, f"game_{uuid.uuid4().hex[:10]}")
    sandbox = await games.authenticate(ctx, created.sandbox_api_key)
    live = await games.authenticate(ctx, created.live_api_key)
    assert sandbox is not None and live is not None
    return sandbox, live


async def _sale(ctx: ServiceContext, principal: Principal, price: int, currency: str, *, paid: bool) -> str:
    new = new_session(
        game_id=principal.game_id,
        user_id="player_1",
        title="Coins",
        price=price,
        currency=currency,
        image=None,
        return_url=None,
        metadata={},
        expires_at=ctx.clock() + timedelta(minutes=30),
        live=principal.mode is Mode.LIVE,
        now=ctx.clock(),
    )
    session = await sessions.create_session(ctx, principal, new, processors=PROCESSORS)
    if paid:
        payment = await payments.start_payment(ctx, session.id, method=Method.CARD, processor="sandbox")
        await payments.settle_payment(ctx, payment.id, Outcome())
        return payment.id
    return session.id


async def test_closed_days_are_kept_and_today_is_live(ctx: ServiceContext) -> None:
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    sandbox, live = await _game(ctx)
    other, _ = await _game(ctx)
    clock.now = datetime(2030, 3, 8, 9, 0, tzinfo=UTC)
    paid = await _sale(ctx, sandbox, 499, "USD", paid=True)
    await _sale(ctx, sandbox, 300, "EUR", paid=True)
    await _sale(ctx, sandbox, 499, "USD", paid=False)
    await _sale(ctx, live, 999, "USD", paid=True)
    await _sale(ctx, other, 999, "USD", paid=True)
    await disputes.record_dispute(
        ctx,
        processor="sandbox",
        processor_dispute_id=uuid.uuid4().hex,
        mode="sandbox",
        payment_id=paid,
        reason="fraudulent",
        amount=499,
        currency="USD",
    )
    clock.now = datetime(2030, 3, 10, 12, 0, tzinfo=UTC)
    first = await reports.overview(ctx, sandbox)
    by_day = {d.day.isoformat(): d for d in first.days}
    assert len(first.days) == 30 and first.days[-1].day.isoformat() == "2030-03-10"
    day = by_day["2030-03-08"]
    assert (day.created, day.paid, day.disputes, day.revenue) == (3, 2, 1, {"USD": 499, "EUR": 300})
    assert day.dispute_rate == 0.5
    assert (first.created, first.paid, first.currencies) == (3, 2, ["EUR", "USD"])
    assert (await reports.overview(ctx, live)).revenue("USD") == 999
    # Today is counted on every call; the closed days come from what was counted before.
    await _sale(ctx, sandbox, 100, "USD", paid=True)
    second = await reports.overview(ctx, sandbox)
    assert second.days[-1].created == 1 and second.days[-1].revenue == {"USD": 100}
    assert second.days[:-1] == first.days[:-1]
    # A day later, yesterday is closed and counted once more than before, today starts empty.
    clock.now = datetime(2030, 3, 11, 0, 10, tzinfo=UTC)
    third = await reports.overview(ctx, sandbox)
    assert [d.created for d in third.days[-3:]] == [0, 1, 0]
    assert third.revenue("USD") == 599 and third.created == 4


async def test_lists_stop_counting_at_the_limit(ctx: ServiceContext) -> None:
    from toffeepay_server.domain.listing import Page

    sandbox, _ = await _game(ctx)
    for _ in range(3):
        await _sale(ctx, sandbox, 100, "USD", paid=True)
    everything = Page(2, 0, None, None)
    found, total = await sessions.list_sessions(ctx, sandbox, game_id=None, user_id=None, status=None, page=everything)
    assert (len(found), total) == (2, 3)
    found, total = await sessions.list_sessions(
        ctx, sandbox, game_id=None, user_id=None, status=None, page=everything, count_limit=2
    )
    assert (len(found), total) == (2, 2)
    assert (await reports.list_payments(ctx, sandbox, status=None, user_id=None, page=everything, count_limit=2))[
        1
    ] == 2
    assert (await reports.list_payments(ctx, sandbox, status=None, user_id=None, page=everything))[1] == 3
