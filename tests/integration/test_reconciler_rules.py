"""The reconciler's rules with a processor double, on both engines: who is asked, and what follows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENGINES, make_database
from tests.support import both_modes_processors
from toffeepay_server.domain.clock import ManualClock
from toffeepay_server.domain.keys import Mode
from toffeepay_server.domain.payments import FailureCode, Method, Outcome, Payment, PaymentStatus
from toffeepay_server.domain.sessions import new_session
from toffeepay_server.events.reconciler import Reconciler
from toffeepay_server.services import games, payments, sessions
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.services.processor import Instructions, Processor, ProcessorError, Processors, Started
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade

PROCESSORS = both_modes_processors()

AFTER = timedelta(minutes=10)


class Asked(Processor):
    """A live processor whose answers the test scripts, recording who it was asked about."""

    name = "asked"
    mode = Mode.LIVE.value

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answers: dict[str, Started | Exception] = {}

    def check(self, instructions: Instructions) -> None:
        pass

    async def start(self, payment: Payment, instructions: Instructions) -> Started:
        return Started(None)

    async def refund(self, payment: Payment, refund: Any, options: Mapping[str, str]) -> Any:
        raise ProcessorError("not in this test")

    async def reconcile(self, payment: Payment) -> Started:
        self.asked.append(payment.id)
        answer = self.answers[payment.id]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    yield url
    next(made, None)


@pytest.fixture
async def ctx(db_url: str) -> AsyncIterator[ServiceContext]:
    context = ServiceContext(db=Database(db_url), public_url="http://pay.test", clock=ManualClock(datetime.now(UTC)))
    yield context
    await context.db.dispose()


async def _processing(ctx: ServiceContext) -> Payment:
    created = await games.create_game(ctx, f"game_{uuid.uuid4().hex[:10]}")
    principal = await games.authenticate(ctx, created.live_api_key)
    assert principal is not None
    new = new_session(
        game_id=principal.game_id,
        user_id="p",
        title="Gold",
        price=499,
        currency="USD",
        image=None,
        return_url=None,
        metadata={},
        expires_at=None,
        live=True,
        now=ctx.clock(),
    )
    session = await sessions.create_session(ctx, principal, new, processors=PROCESSORS)
    return await payments.start_payment(ctx, session.id, method=Method.CARD, processor="asked")


async def _status(ctx: ServiceContext, payment_id: str) -> tuple[PaymentStatus, str | None]:
    found = await payments.find_processor_payment(ctx, "asked", processor_ref=None, payment_id=payment_id)
    assert found is not None
    return found.status, found.processor_ref


async def test_only_payments_past_the_bound_are_asked_and_settled(ctx: ServiceContext) -> None:
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    processor = Asked()
    reconciler = Reconciler(ctx, Processors(processor), AFTER)
    old = await _processing(ctx)
    clock.advance(minutes=9)
    young = await _processing(ctx)
    clock.advance(minutes=2)  # `old` is 11 minutes old, `young` 2
    processor.answers[old.id] = Started("pi_old", Outcome())
    assert await reconciler.run_once() == 1
    assert processor.asked == [old.id]
    assert await _status(ctx, old.id) == (PaymentStatus.SUCCEEDED, "pi_old")
    assert (await _status(ctx, young.id))[0] is PaymentStatus.PROCESSING


async def test_a_processor_still_working_or_unreachable_changes_nothing(ctx: ServiceContext) -> None:
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    processor = Asked()
    reconciler = Reconciler(ctx, Processors(processor), AFTER)
    working, down, failed = await _processing(ctx), await _processing(ctx), await _processing(ctx)
    clock.advance(minutes=11)
    processor.answers[working.id] = Started("pi_working")  # no outcome yet: ask again later
    processor.answers[down.id] = ProcessorError("unreachable")
    processor.answers[failed.id] = Started(None, Outcome(FailureCode.PROCESSOR_ERROR, "interrupted"))
    assert await reconciler.run_once() == 1
    assert await _status(ctx, working.id) == (PaymentStatus.PROCESSING, "pi_working")  # its id is kept
    assert (await _status(ctx, down.id))[0] is PaymentStatus.PROCESSING
    assert (await _status(ctx, failed.id))[0] is PaymentStatus.FAILED
    # A pass runs only when due: a quarter of the bound later.
    assert await reconciler.maybe_run() == 0  # the first pass is due at once...
    assert await reconciler.maybe_run() == 0  # ...and the next not before a quarter of the bound
    assert len(processor.asked) == 5
    clock.advance(minutes=3)
    await reconciler.maybe_run()
    assert len(processor.asked) == 7
