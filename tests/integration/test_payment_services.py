"""Payment use cases driven in-process against both engines, with a manual clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import ENGINES, make_database
from tests.support import both_modes_processors, sql
from toffeepay_server.domain.clock import ManualClock
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.keys import Principal
from toffeepay_server.domain.payments import FailureCode, Method, Outcome, PaymentStatus
from toffeepay_server.domain.sessions import SessionStatus, new_session
from toffeepay_server.processors.sandbox import adapter as sandbox
from toffeepay_server.services import disputes, games, payments, processing, sessions
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.services.processor import Instructions, Processors
from toffeepay_server.services.secrets import installation_secret
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade

PROCESSORS = both_modes_processors()


@pytest.fixture(params=ENGINES)
def quiet_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database that no server process sweeps."""
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    yield url
    next(made, None)


class World:
    def __init__(self, url: str) -> None:
        self.url = url
        self.clock = ManualClock()
        self.ctx = ServiceContext(db=Database(url), public_url="http://pay.test", clock=self.clock)
        self.principal: Principal

    async def start(self) -> World:
        created = await games.create_game(self.ctx, f"game_{uuid.uuid4().hex[:10]}")
        principal = await games.authenticate(self.ctx, created.sandbox_api_key)
        assert principal is not None
        self.principal = principal
        return self

    async def session(self, minutes: int = 30, processors: Processors = PROCESSORS) -> str:
        new = new_session(
            game_id=self.principal.game_id,
            user_id="player_42",
            title="50 Gold Coins",
            price=499,
            currency="USD",
            image=None,
            return_url=None,
            metadata={},
            expires_at=self.clock() + timedelta(minutes=minutes),
            live=False,
            now=self.clock(),
        )
        return (await sessions.create_session(self.ctx, self.principal, new, processors=processors)).id

    async def start_payment(self, session_id: str) -> str:
        payment = await payments.start_payment(self.ctx, session_id, method=Method.CARD, processor="sandbox")
        return payment.id

    def event_types(self, session_id: str) -> list[tuple[str, int]]:
        rows = sql(
            self.url, "SELECT type, sequence FROM events WHERE session_id = :id ORDER BY position", {"id": session_id}
        )
        return [(r[0], r[1]) for r in rows]


@pytest.fixture
async def world(quiet_db: str) -> AsyncIterator[World]:
    w = await World(quiet_db).start()
    yield w
    await w.ctx.db.dispose()


async def test_no_caller_creates_a_session_no_processor_can_charge(world: World) -> None:
    with pytest.raises(DomainError) as refused:
        await world.session(processors=Processors())
    assert refused.value.reason is Reason.PROCESSOR_UNAVAILABLE
    assert await world.session(processors=Processors(sandbox.SandboxProcessor(world.clock, settle_after=0)))


async def test_a_payment_started_before_expiry_is_not_expired_under_it(world: World) -> None:
    sid = await world.session(minutes=2)
    world.clock.advance(minutes=1, seconds=59)
    payment_id = await world.start_payment(sid)
    world.clock.advance(minutes=5)
    assert await sessions.sweep_expired(world.ctx) == 0
    assert (await sessions.get_session(world.ctx, world.principal, sid)).status is SessionStatus.PENDING
    settled = await payments.settle_payment(world.ctx, payment_id, Outcome())
    assert settled.status is PaymentStatus.SUCCEEDED and settled.succeeded_at == world.clock()
    assert (await sessions.get_session(world.ctx, world.principal, sid)).status is SessionStatus.PAID


async def test_a_lapsed_session_refuses_payment_and_is_expired(world: World) -> None:
    sid = await world.session(minutes=2)
    world.clock.advance(minutes=2)
    with pytest.raises(DomainError) as refused:
        await world.start_payment(sid)
    assert refused.value.reason is Reason.SESSION_EXPIRED
    assert await sessions.sweep_expired(world.ctx) == 1
    assert world.event_types(sid) == [("session.created", 1), ("session.expired", 2)]


async def test_concurrent_starts_make_one_payment(world: World) -> None:
    sid = await world.session()
    results = await asyncio.gather(*(world.start_payment(sid) for _ in range(5)), return_exceptions=True)
    started = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(started) == 1 and len(refused) == 4, results
    assert {r.reason for r in refused} == {Reason.PAYMENT_IN_PROGRESS}


async def test_settling_twice_keeps_the_first_outcome(world: World) -> None:
    sid = await world.session()
    payment_id = await world.start_payment(sid)
    first, second = await asyncio.gather(
        payments.settle_payment(world.ctx, payment_id, Outcome(FailureCode.CARD_DECLINED)),
        payments.settle_payment(world.ctx, payment_id, Outcome()),
    )
    assert first.status is second.status
    again = await payments.settle_payment(world.ctx, payment_id, Outcome(FailureCode.INSUFFICIENT_FUNDS))
    assert (again.status, again.failure_code) == (first.status, first.failure_code)
    ending = ["payment.failed", "session.failed"] if first.failure_code else ["payment.succeeded", "session.paid"]
    assert world.event_types(sid) == [("session.created", 1), ("payment.created", 2), (ending[0], 3), (ending[1], 4)]


async def test_a_dispute_notification_is_stored_once(world: World) -> None:
    sid = await world.session()
    payment_id = await world.start_payment(sid)
    await payments.settle_payment(world.ctx, payment_id, Outcome())
    report = dict(
        processor="sandbox",
        processor_dispute_id="dp_ext_1",
        mode="sandbox",
        payment_id=payment_id,
        reason="fraudulent",
        amount=499,
        currency="USD",
    )
    stored = await asyncio.gather(*(disputes.record_dispute(world.ctx, **report) for _ in range(3)))
    assert len({d.id for d in stored}) == 1
    assert stored[0].game_id == world.principal.game_id and stored[0].session_id == sid
    assert world.event_types(sid)[-1] == ("dispute.created", 5) and len(world.event_types(sid)) == 5


async def test_a_dispute_matching_no_payment_is_kept_without_telling_anyone(world: World) -> None:
    report = dict(
        processor="sandbox",
        processor_dispute_id="dp_ext_2",
        mode="live",
        payment_id="pay_unknown",
        reason="duplicate",
        amount=100,
        currency="EUR",
    )
    dispute = await disputes.record_dispute(world.ctx, **report)
    assert (dispute.payment_id, dispute.game_id, dispute.mode) == (None, None, "live")
    assert (await disputes.record_dispute(world.ctx, **report)).id == dispute.id
    assert sql(world.url, "SELECT count(*) FROM events WHERE type = 'dispute.created'")[0][0] == 0


async def test_the_sandbox_outcome_waits_in_the_database(world: World) -> None:
    """Any process delivers the sandbox's due notification, so a restart loses none."""
    sid = await world.session()
    processor = sandbox.SandboxProcessor(world.clock, settle_after=1.5)
    started = await processing.pay(
        world.ctx, processor, sid, Instructions(Method.GOOGLE_PAY, {"outcome": "card_declined"})
    )
    assert started.status is PaymentStatus.PROCESSING
    assert await sandbox.settle_due(world.ctx) == 0
    world.clock.advance(seconds=1.5)
    other = ServiceContext(db=Database(world.url), public_url="http://pay.test", clock=world.clock)
    try:
        assert await sandbox.settle_due(other) == 1
        assert await sandbox.settle_due(other) == 0
    finally:
        await other.db.dispose()
    payment = await payments.get_payment(world.ctx, world.principal, started.id)
    assert (payment.status, payment.failure_code, payment.failed_at) == (
        PaymentStatus.FAILED,
        FailureCode.CARD_DECLINED,
        world.clock(),
    )
    assert payment.processor_ref is not None and payment.processor_ref.startswith("sbx.")


async def test_the_sandbox_fails_a_payment_it_never_acknowledged(world: World) -> None:
    sid = await world.session()
    payment_id = await world.start_payment(sid)  # no sandbox reference recorded: the process stopped here
    assert await sandbox.settle_due(world.ctx) == 0
    world.clock.advance(seconds=61)
    assert await sandbox.settle_due(world.ctx) == 1
    payment = await payments.get_payment(world.ctx, world.principal, payment_id)
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, FailureCode.PROCESSOR_ERROR)


async def test_the_installation_secret_is_made_once(world: World) -> None:
    other = ServiceContext(db=Database(world.url), public_url="http://pay.test")
    try:
        made = await asyncio.gather(installation_secret(world.ctx, "test"), installation_secret(other, "test"))
        assert made[0] == made[1] and len(made[0]) >= 64
        assert await installation_secret(other, "test") == made[0]
        assert await installation_secret(other, "another") != made[0]
    finally:
        await other.db.dispose()
