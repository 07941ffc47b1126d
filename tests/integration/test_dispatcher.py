"""The dispatcher driven in-process against a real database (both engines) with a manual clock.

Retry schedules span days, so time is the injected clock's: the receiver on a real port
answers as scripted and the tests move the clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import ENGINES, make_database
from tests.receiver import Answer, Receiver
from tests.support import both_modes_processors
from toffeepay_server.domain import events, listing
from toffeepay_server.domain.clock import ManualClock
from toffeepay_server.domain.events import Event
from toffeepay_server.domain.keys import Mode, Principal
from toffeepay_server.domain.payments import FailureCode, Method, Payment, PaymentStatus
from toffeepay_server.domain.refunds import Refund, RefundFailureCode, RefundOutcome, RefundReason, RefundStatus
from toffeepay_server.domain.sessions import new_session
from toffeepay_server.domain.webhooks import Endpoint
from toffeepay_server.events import dispatcher as dispatcher_module
from toffeepay_server.events.dispatcher import Dispatcher
from toffeepay_server.events.retry import RetryPolicy
from toffeepay_server.services import games, outbox, sessions, webhooks
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store import outbox as store_outbox
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import upgrade
from toffeepay_server.store.types import Instant

PROCESSORS = both_modes_processors()

NO_JITTER = RetryPolicy(jitter=lambda seconds: seconds)


@pytest.fixture(params=ENGINES)
def quiet_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database that no server process dispatches from."""
    made = make_database(request.param, tmp_path)
    url = next(made)
    upgrade(url)
    yield url
    next(made, None)


class Hub:
    """One game on a quiet database, a manual clock, a receiver, and dispatchers to drive."""

    def __init__(self, url: str, receiver: Receiver) -> None:
        self.url = url
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        self.ctx = ServiceContext(
            db=Database(url), public_url="http://pay.test", clock=self.clock, private_webhook_targets="sandbox"
        )
        self.receiver = receiver
        self.dispatchers: list[Dispatcher] = []
        self.extra_dbs: list[Database] = []
        self.principal: Principal

    async def start(self) -> Hub:
        created = await games.create_game(self.ctx, f"game_{uuid.uuid4().hex[:10]}")
        principal = await games.authenticate(self.ctx, created.sandbox_api_key)
        assert principal is not None
        self.principal = principal
        return self

    async def endpoint(self, path: str, *answers: Answer, **options: Any) -> tuple[Endpoint, str]:
        endpoint, secret = await webhooks.create_endpoint(
            self.ctx, game_id=self.principal.game_id, mode=Mode.SANDBOX, url=self.receiver.url(path), **options
        )
        self.receiver.expect(path, secret, *answers)
        return endpoint, secret

    async def session(self, **metadata: str) -> Any:
        new = new_session(
            game_id=self.principal.game_id,
            user_id="player_42",
            title="50 Gold Coins",
            price=499,
            currency="USD",
            image=None,
            return_url=None,
            metadata=metadata,
            expires_at=None,
            live=False,
            now=self.clock(),
        )
        return await sessions.create_session(self.ctx, self.principal, new, processors=PROCESSORS)

    async def emit(self, event_type: str, data: dict[str, Any], session_id: str | None = None) -> str:
        """Commit one event as a service would (used for payment outcomes)."""
        event = Event(
            str(uuid.uuid4()),
            event_type,
            self.principal.game_id,
            "sandbox",
            session_id,
            data.get("sequence"),
            self.clock(),
            data,
        )
        async with self.ctx.db.transaction() as uow:
            uow.add_event(event)
        return event.id

    def dispatcher(self, db: Database | None = None, **options: Any) -> Dispatcher:
        ctx = self.ctx
        if db is not None:
            ctx = ServiceContext(
                db=db, public_url=self.ctx.public_url, clock=self.clock, private_webhook_targets="sandbox"
            )
        options.setdefault("policy", NO_JITTER)
        options.setdefault("timeout", 2.0)
        dispatcher = Dispatcher(ctx, **options)
        self.dispatchers.append(dispatcher)
        return dispatcher

    def second_database(self) -> Database:
        """Another connection pool on the same database, as a second process would have."""
        db = Database(self.url)
        self.extra_dbs.append(db)
        return db

    async def rows(self, statement: str, **params: Any) -> list[Any]:
        async with self.ctx.db.read() as conn:
            return list(await conn.execute(text(statement), params))

    async def delivery(self, endpoint_id: str) -> Any:
        found = await self.rows(
            "SELECT id, status, attempts, next_attempt_at FROM deliveries WHERE endpoint_id = :e", e=endpoint_id
        )
        assert len(found) == 1, found
        return found[0]

    async def attempts(self, endpoint_id: str) -> list[Any]:
        return await self.rows(
            "SELECT a.status_code, a.latency_ms, a.response_excerpt, a.error, a.attempted_at FROM delivery_attempts a "
            "JOIN deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = :e ORDER BY a.id",
            e=endpoint_id,
        )

    async def close(self) -> None:
        for dispatcher in self.dispatchers:
            await dispatcher.aclose()
        for db in [self.ctx.db, *self.extra_dbs]:
            await db.dispose()


def instant(value: datetime) -> int:
    result = Instant().process_bind_param(value, None)
    assert result is not None
    return result


async def settled(dispatcher: Dispatcher, endpoint_id: str, *, in_flight: int, waiting: int) -> None:
    """Wait until the running dispatcher holds this many: up to 20 s, inside the 30 s for
    which the receiver holds the answers that keep them there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    state = (dispatcher.inflight.endpoints[endpoint_id], dispatcher.waiting_count)
    while state != (in_flight, waiting) and loop.time() < deadline:
        await asyncio.sleep(0.05)
        state = (dispatcher.inflight.endpoints[endpoint_id], dispatcher.waiting_count)
    assert state == (in_flight, waiting), f"in flight and waiting: {state}"


@pytest.fixture
async def hub(quiet_db: str) -> AsyncIterator[Hub]:
    receiver = Receiver(tolerance=None)  # signed at the manual clock's time
    h = await Hub(quiet_db, receiver).start()
    yield h
    await h.close()
    receiver.close()


async def test_fails_then_retries_on_schedule(hub: Hub) -> None:
    endpoint, _ = await hub.endpoint("/flaky", Answer(500, body=b"x" * 5000), Answer(503), Answer(500))
    await hub.session()
    start = hub.clock()
    assert await hub.dispatcher().drain() == 1
    waits = [5, 30, 120]
    for attempt, wait in enumerate(waits, start=1):
        row = await hub.delivery(endpoint.id)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.next_attempt_at == instant(hub.clock() + timedelta(seconds=wait))
        hub.clock.advance(seconds=wait - 1)
        assert await hub.dispatcher().drain() == 0  # not due yet
        hub.clock.advance(seconds=1)
        assert await hub.dispatcher().drain() == 1
    row = await hub.delivery(endpoint.id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("succeeded", 4, None)
    got = hub.receiver.at("/flaky")
    assert [r.status for r in got] == [500, 503, 500, 200]
    assert all(r.error is None for r in got)
    assert len({r.event_id for r in got}) == 1
    logged = await hub.attempts(endpoint.id)
    assert [a.status_code for a in logged] == [500, 503, 500, 200]
    assert logged[0].response_excerpt == "x" * 1024  # the first 1 KB of the answer
    assert all(a.latency_ms >= 0 and a.error is None for a in logged)
    assert logged[-1].attempted_at == instant(start + timedelta(seconds=sum(waits)))


async def test_redirects_and_timeouts_are_failures(hub: Hub) -> None:
    target, _ = await hub.endpoint("/target")
    redirect, _ = await hub.endpoint(
        "/moved", Answer(302, headers={"Location": hub.receiver.url("/target")}), events=[events.SESSION_CREATED]
    )
    release = threading.Event()
    slow, _ = await hub.endpoint("/slow", Answer(hold=release), events=[events.SESSION_CREATED])
    await hub.session()
    dispatcher = hub.dispatcher(timeout=0.5)
    await dispatcher.drain()
    release.set()
    assert len(hub.receiver.wait_for("/target")) == 1  # its own delivery only: the redirect was not followed
    assert (await hub.delivery(redirect.id)).status == "pending"
    assert [a.status_code for a in await hub.attempts(redirect.id)] == [302]
    timed_out = await hub.attempts(slow.id)
    assert timed_out[0].status_code is None and "within 0.5 s" in timed_out[0].error
    assert (await hub.delivery(slow.id)).next_attempt_at == instant(hub.clock() + timedelta(seconds=5))
    hub.clock.advance(seconds=5)
    assert await dispatcher.drain() == 2
    assert (await hub.delivery(redirect.id)).status == "succeeded"
    assert (await hub.delivery(slow.id)).status == "succeeded"
    assert (await hub.delivery(target.id)).status == "succeeded"


async def test_retry_after_is_honoured_up_to_a_bound(hub: Hub) -> None:
    polite, _ = await hub.endpoint("/polite", Answer(503, headers={"Retry-After": "120"}))
    greedy, _ = await hub.endpoint("/greedy", Answer(429, headers={"Retry-After": "999999"}))
    short, _ = await hub.endpoint("/short", Answer(503, headers={"Retry-After": "1"}))
    huge, _ = await hub.endpoint("/huge", Answer(503, headers={"Retry-After": "9" * 25}))
    await hub.session()
    await hub.dispatcher().drain()
    now = hub.clock()
    assert (await hub.delivery(huge.id)).next_attempt_at == instant(now + timedelta(hours=6))
    assert (await hub.delivery(polite.id)).next_attempt_at == instant(now + timedelta(seconds=120))
    assert (await hub.delivery(greedy.id)).next_attempt_at == instant(now + timedelta(hours=6))
    assert (await hub.delivery(short.id)).next_attempt_at == instant(now + timedelta(seconds=5))


async def test_gives_up_after_three_days(hub: Hub) -> None:
    endpoint, _ = await hub.endpoint("/dead", *[Answer(500)] * 100)
    await hub.session()
    first = hub.clock()
    dispatcher = hub.dispatcher()
    await dispatcher.drain()
    while (row := await hub.delivery(endpoint.id)).status == "pending":
        hub.clock.now = Instant().process_result_value(row.next_attempt_at, None)
        assert await dispatcher.drain() == 1
    assert row.status == "failed" and row.next_attempt_at is None
    logged = await hub.attempts(endpoint.id)
    assert len(logged) == row.attempts == len(hub.receiver.at("/dead"))
    last = Instant().process_result_value(logged[-1].attempted_at, None)
    assert timedelta(days=2, hours=18) < last - first <= timedelta(days=3)
    gaps = [
        (Instant().process_result_value(b.attempted_at, None) - Instant().process_result_value(a.attempted_at, None))
        for a, b in itertools.pairwise(logged)
    ]
    expected = [5, 30, 120, 600, 1800, 3600, 3 * 3600] + [6 * 3600] * (len(gaps) - 7)
    assert [g.total_seconds() for g in gaps] == expected


async def test_a_slow_endpoint_never_delays_another(hub: Hub) -> None:
    release = threading.Event()
    _slow, _ = await hub.endpoint("/stuck", *[Answer(hold=release)] * 50)
    _fast, _ = await hub.endpoint("/fast")
    for _ in range(12):
        await hub.session()
    dispatcher = hub.dispatcher(per_endpoint=3, timeout=30)
    task = asyncio.create_task(dispatcher.run())
    try:
        # Every event reaches the fast endpoint while the stuck one holds all of its slots.
        await asyncio.to_thread(hub.receiver.wait_for, "/fast", 12)
        assert hub.receiver.at("/stuck") == []
        release.set()
        await asyncio.to_thread(hub.receiver.wait_for, "/stuck", 12)
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len({r.event_id for r in hub.receiver.at("/fast")}) == 12
    assert len({r.event_id for r in hub.receiver.at("/stuck")}) == 12


async def test_two_dispatchers_never_send_the_same_attempt(hub: Hub) -> None:
    # The first requests fail, so retries are claimed concurrently too.
    answers = [Answer(500)] * 15
    endpoint_a, _ = await hub.endpoint("/a", *answers)
    endpoint_b, _ = await hub.endpoint("/b", *answers)
    for _ in range(60):
        await hub.session()
    first = hub.dispatcher(name="first", per_endpoint=8)
    second = hub.dispatcher(db=hub.second_database(), name="second", per_endpoint=8)
    for _ in range(3):
        await asyncio.gather(first.drain(), second.drain())
        hub.clock.advance(seconds=5)
    received = hub.receiver.at("/a") + hub.receiver.at("/b")
    answered = await hub.rows("SELECT COUNT(*) AS n FROM delivery_attempts WHERE status_code IS NOT NULL")
    assert len(received) == answered[0].n  # every request that arrived was one logged attempt
    for path, endpoint in (("/a", endpoint_a), ("/b", endpoint_b)):
        succeeded = Counter(r.event_id for r in hub.receiver.at(path) if r.status == 200)
        assert len(succeeded) == 60 and set(succeeded.values()) == {1}
        rows = await hub.rows("SELECT status FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
        assert len(rows) == 60 and {r.status for r in rows} == {"succeeded"}
    assert {r.headers["user-agent"] for r in received} == {"ToffeePay-Webhooks/1.0"}


async def test_a_lease_of_a_vanished_dispatcher_is_taken_over(hub: Hub) -> None:
    endpoint, _ = await hub.endpoint("/late")
    await hub.session()
    # A dispatcher leases the delivery, then its process dies before sending.
    leased = await outbox.lease_work(
        hub.ctx, me="gone", lease=timedelta(seconds=60), capacity=outbox.Capacity(outbox.Limits(), {}, {}, {})
    )
    assert leased.events == 1 and len(leased.jobs) == 1
    survivor = hub.dispatcher()
    assert await survivor.drain() == 0  # leased to another: not touched
    hub.clock.advance(seconds=61)
    assert await survivor.drain() == 1
    assert (await hub.delivery(endpoint.id)).status == "succeeded"
    assert len(hub.receiver.at("/late")) == 1


async def test_deliveries_leased_ahead_wait_for_a_slot_and_are_given_back_at_shutdown(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "SHUTDOWN_GRACE", 0.1)
    release = threading.Event()
    endpoint, _ = await hub.endpoint("/stuck", *[Answer(hold=release)] * 2)
    for _ in range(8):
        await hub.session()
    monkeypatch.setattr(dispatcher_module, "LEASE_AHEAD", 3)
    monkeypatch.setattr(dispatcher_module, "LEASE_AHEAD_POSTGRESQL", 3)
    dispatcher = hub.dispatcher(name="ahead", per_endpoint=2, timeout=30)
    task = asyncio.create_task(dispatcher.run())
    try:
        # Two in flight (the limit), four more leased and waiting, two left for anyone.
        await settled(dispatcher, endpoint.id, in_flight=2, waiting=4)
        claimed = await hub.rows("SELECT claimed_by FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
        assert sorted(str(r.claimed_by) for r in claimed) == ["None"] * 2 + ["ahead"] * 6
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        release.set()
    # The waiting four were given back at once; the two cut off in flight wait for their lease.
    claimed = await hub.rows("SELECT claimed_by FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
    assert sorted(str(r.claimed_by) for r in claimed) == ["None"] * 6 + ["ahead"] * 2
    survivor = hub.dispatcher(name="survivor")
    assert await survivor.drain() == 6
    hub.clock.advance(seconds=61)
    assert await survivor.drain() == 2
    rows = await hub.rows("SELECT status FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
    assert [r.status for r in rows] == ["succeeded"] * 8


async def test_a_delivery_that_waited_until_its_lease_ran_short_is_given_back_not_sent(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    endpoint, _ = await hub.endpoint("/stuck", Answer(hold=release))
    for _ in range(3):
        await hub.session()
    given_back: list[list[str]] = []
    real_release = outbox.release

    async def spy(ctx: Any, *, me: str, delivery_ids: Any) -> None:
        given_back.append(list(delivery_ids))
        await real_release(ctx, me=me, delivery_ids=delivery_ids)

    monkeypatch.setattr(dispatcher_module.outbox, "release", spy)
    # Leases of 60 s, sends of up to 30 s: a waiting delivery may start only within 25 s of its lease.
    dispatcher = hub.dispatcher(name="ahead", per_endpoint=1, timeout=30)
    task = asyncio.create_task(dispatcher.run())
    try:
        await settled(dispatcher, endpoint.id, in_flight=1, waiting=2)
        hub.clock.advance(seconds=26)
        release.set()
        await asyncio.to_thread(hub.receiver.wait_for, "/stuck", 3)
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # The two that waited too long were given back, then leased again (afresh) and sent once each.
    assert [len(ids) for ids in given_back][:1] == [2]
    assert len({r.event_id for r in hub.receiver.at("/stuck")}) == 3 == len(hub.receiver.at("/stuck"))
    rows = await hub.rows("SELECT status FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
    assert [r.status for r in rows] == ["succeeded"] * 3


async def test_a_batch_cut_off_while_being_recorded_is_sent_again(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, _ = await hub.endpoint("/hook")
    for _ in range(5):
        await hub.session()
    real_record = store_outbox.record

    async def record_then_die(conn: Any, attempt_rows: Any, outcomes: Any) -> None:
        await real_record(conn, attempt_rows, outcomes)
        raise RuntimeError("the process died before the commit")

    monkeypatch.setattr(store_outbox, "record", record_then_die)
    doomed = hub.dispatcher(name="doomed")
    with pytest.raises(RuntimeError, match="died"):
        await doomed.drain()
    assert len(hub.receiver.at("/hook")) == 5
    # Nothing of the batch was kept: no attempt logged, every delivery still pending and leased.
    assert await hub.rows("SELECT id FROM delivery_attempts") == []
    rows = await hub.rows("SELECT status, claimed_by FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
    assert {(r.status, r.claimed_by) for r in rows} == {("pending", "doomed")} and len(rows) == 5
    monkeypatch.setattr(store_outbox, "record", real_record)
    survivor = hub.dispatcher(name="survivor")
    assert await survivor.drain() == 0  # still leased
    hub.clock.advance(seconds=61)
    assert await survivor.drain() == 5
    # At least once: every event arrived twice, and each delivery is recorded once, succeeded.
    assert set(Counter(r.event_id for r in hub.receiver.at("/hook")).values()) == {2}
    rows = await hub.rows("SELECT status, attempts FROM deliveries WHERE endpoint_id = :e", e=endpoint.id)
    assert {(r.status, r.attempts) for r in rows} == {("succeeded", 1)} and len(rows) == 5
    assert len(await hub.rows("SELECT id FROM delivery_attempts")) == 5


async def test_rotation_signs_with_both_secrets_during_the_overlap(hub: Hub) -> None:
    endpoint, old = await hub.endpoint("/rotating")
    new, expires = await webhooks.rotate_secret(hub.ctx, endpoint.id, hub.principal, overlap_seconds=3600)
    assert expires == hub.clock() + timedelta(hours=1)
    hub.receiver.expect("/rotating", [old])
    await hub.session()
    await hub.dispatcher().drain()
    during = hub.receiver.at("/rotating")[-1]
    assert during.error is None  # verifies with the old secret alone
    signature = during.headers["x-toffeepay-signature"]
    assert signature.count("v1=") == 2 and len(during.headers["webhook-signature"].split(" ")) == 2
    import toffeepay

    toffeepay.Webhook.construct_event(during.body, signature, new, tolerance=None)
    hub.clock.advance(seconds=3601)
    hub.receiver.expect("/rotating", [new])
    await hub.session()
    await hub.dispatcher().drain()
    after = hub.receiver.at("/rotating")[-1]
    assert after.error is None and after.headers["x-toffeepay-signature"].count("v1=") == 1
    with pytest.raises(toffeepay.SignatureVerificationError):
        toffeepay.Webhook.construct_event(after.body, after.headers["x-toffeepay-signature"], old, tolerance=None)


async def test_filters_formats_and_removed_endpoints(hub: Hub) -> None:
    _only_paid, _ = await hub.endpoint("/paid-only", events=[events.PAYMENT_SUCCEEDED])
    _everything, _ = await hub.endpoint("/all")
    _legacy, _ = await hub.endpoint("/legacy", format="legacy_form")
    removed, _ = await hub.endpoint("/removed", Answer(500))
    paused, _ = await hub.endpoint("/paused")
    await webhooks.update_endpoint(hub.ctx, hub.principal, paused.id, enabled=False)
    await hub.session()
    # An endpoint registered after an event does not receive it.
    hub.clock.advance(seconds=1)
    await hub.endpoint("/newcomer")
    dispatcher = hub.dispatcher()
    await dispatcher.drain()
    await webhooks.delete_endpoint(hub.ctx, removed.id, hub.principal)
    hub.clock.advance(seconds=5)
    await dispatcher.drain()
    assert [r.event["event"] for r in hub.receiver.at("/all")] == ["session.created"]
    assert hub.receiver.at("/paid-only") == []
    assert hub.receiver.at("/legacy") == []  # a legacy callback reports payment outcomes only
    assert hub.receiver.at("/paused") == []
    assert len(hub.receiver.at("/removed")) == 1  # once before removal, never after
    assert (await hub.delivery(removed.id)).status == "failed"
    assert hub.receiver.at("/newcomer") == []


def _payment(session: Any, status: PaymentStatus, **fields: Any) -> Payment:
    return Payment(
        id=f"pay_{uuid.uuid4().hex[:26]}",
        session_id=session.id,
        game_id=session.game_id,
        mode="sandbox",
        user_id=session.user_id,
        status=status,
        amount=session.item.price,
        currency=session.item.currency,
        method=Method.CARD,
        details=session.item.title,
        processor="sandbox",
        created_at=session.created_at,
        **fields,
    )


async def test_legacy_callbacks_for_every_outcome(hub: Hub) -> None:
    endpoint, secret = await hub.endpoint("/callback", format="legacy_form")
    paid = await hub.session(order="A-1")
    payment = _payment(paid, PaymentStatus.SUCCEEDED, succeeded_at=hub.clock())
    await hub.emit(events.PAYMENT_SUCCEEDED, events.payment_data(payment, paid, "processing"), paid.id)
    partial = await hub.session()
    short = _payment(
        partial,
        PaymentStatus.FAILED,
        failure_code=FailureCode.PARTIAL_PAYMENT,
        failure_message="Only part of the amount was paid.",
        amount_received=200,
        failed_at=hub.clock(),
    )
    await hub.emit(events.PAYMENT_FAILED, events.payment_data(short, partial, "processing"), partial.id)
    declined = await hub.session()
    refused = _payment(
        declined,
        PaymentStatus.FAILED,
        failure_code=FailureCode.CARD_DECLINED,
        failure_message="The card was declined.",
        failed_at=hub.clock(),
    )
    await hub.emit(events.PAYMENT_FAILED, events.payment_data(refused, declined, "processing"), declined.id)
    cancelled = await sessions.cancel_session(hub.ctx, hub.principal, (await hub.session()).id)
    expired = await sessions.expire_session(hub.ctx, (await hub.session()).id, hub.principal, force=True)
    assert expired is not None
    await hub.dispatcher().drain()
    got = {r.fields["transaction_token"]: r.fields for r in hub.receiver.wait_for("/callback", 5)}
    assert all(r.error is None for r in hub.receiver.at("/callback"))
    assert {(f["status"], f["amount"], f["paid_amount"]) for f in got.values()} == {
        ("PAID", "499", "499"),
        ("PARTIAL", "499", "200"),
        ("FAILED", "499", "0"),
        ("CANCELLED", "499", "0"),
        ("EXPIRED", "499", "0"),
    }
    assert got[paid.id]["transaction_id"] == payment.id
    assert got[paid.id]["custom_parameters"] == json.dumps({"order": "A-1"}, separators=(",", ":"))
    assert got[cancelled.id]["transaction_id"] == cancelled.id
    assert {f["site_id"] for f in got.values()} == {"toffeepay"}
    assert {f["game_id"] for f in got.values()} == {hub.principal.game_id}
    assert {f["user_id"] for f in got.values()} == {"player_42"}
    assert {f["currency"] for f in got.values()} == {"USD"}
    assert endpoint.format == "legacy_form" and secret.startswith("whsec_")


async def test_every_event_type_is_delivered_signed(hub: Hub) -> None:
    await hub.endpoint("/everything")
    session = await hub.session()
    payment = _payment(session, PaymentStatus.PROCESSING)
    sent = [
        await hub.emit(events.PAYMENT_CREATED, events.payment_data(payment, session, None), session.id),
        await hub.emit(events.PAYMENT_SUCCEEDED, events.payment_data(payment, session, "processing"), session.id),
        await hub.emit(events.SESSION_PAID, events.session_data(session, "pending"), session.id),
        await hub.emit(events.PAYMENT_FAILED, events.payment_data(payment, session, "processing"), session.id),
        await hub.emit(events.SESSION_FAILED, events.session_data(session, "pending"), session.id),
        await hub.emit(
            events.DISPUTE_CREATED,
            {"dispute_id": "dp_x", "reason": "fraudulent", "amount": 499, "currency": "USD", "payment_id": payment.id},
        ),
    ]
    refund = Refund(
        id="re_x",
        payment_id=payment.id,
        session_id=session.id,
        game_id=session.game_id,
        mode="sandbox",
        user_id=session.user_id,
        amount=100,
        currency="USD",
        reason=RefundReason.DUPLICATE,
        status=RefundStatus.PENDING,
        processor="sandbox",
        created_at=hub.clock(),
    )
    for type_, settled in (
        (events.REFUND_CREATED, refund),
        (events.REFUND_SUCCEEDED, refund.settle(RefundOutcome(), hub.clock())),
        (events.REFUND_FAILED, refund.settle(RefundOutcome(RefundFailureCode.DECLINED), hub.clock())),
    ):
        sent.append(await hub.emit(type_, events.refund_data(settled, payment, session, None), session.id))
    covered = {events.SESSION_CREATED, events.SESSION_CANCELLED, events.SESSION_EXPIRED}
    covered |= {events.PAYMENT_CREATED, events.PAYMENT_SUCCEEDED, events.SESSION_PAID, events.PAYMENT_FAILED}
    covered |= {events.SESSION_FAILED, events.DISPUTE_CREATED}
    covered |= {events.REFUND_CREATED, events.REFUND_SUCCEEDED, events.REFUND_FAILED}
    # Types other flows emit (their own tests cover their data) go through the same path.
    others = [t for t in events.EVENT_TYPES if t not in covered]
    for event_type in others:
        sent.append(await hub.emit(event_type, events.session_data(session, None), session.id))
    await sessions.cancel_session(hub.ctx, hub.principal, (await hub.session()).id)
    await sessions.expire_session(hub.ctx, (await hub.session()).id, hub.principal, force=True)
    await hub.dispatcher().drain()
    got = hub.receiver.wait_for("/everything", 14 + len(others))
    assert all(r.error is None and r.status == 200 for r in got)
    assert {r.event["event"] for r in got} == set(events.EVENT_TYPES)
    assert set(sent) <= {r.event["id"] for r in got}
    for r in got:
        assert r.headers["x-toffeepay-event"] == r.event["event"]
        assert r.headers["x-toffeepay-event-id"] == r.headers["webhook-id"] == r.event["id"]
        assert r.headers["content-type"] == "application/json"


async def test_events_are_kept_thirty_days(hub: Hub) -> None:
    endpoint, _ = await hub.endpoint("/kept")
    old = await hub.session()
    await hub.dispatcher().drain()
    hub.clock.advance(days=29)
    recent = await hub.session()
    await hub.dispatcher().drain()
    hub.clock.advance(days=1, seconds=1)
    assert await outbox.purge_old_events(hub.ctx) == 1
    left = await hub.rows("SELECT session_id FROM events")
    assert [r.session_id for r in left] == [recent.id]
    kept = await hub.rows("SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id")
    assert len(kept) == 1 and len(await hub.rows("SELECT id FROM deliveries")) == 1
    assert len(await hub.attempts(endpoint.id)) == 1
    assert old.id not in {r.session_id for r in left}
    bodies, total = await webhooks.list_events(
        hub.ctx, hub.principal, types=[], after=None, page=listing.page(0, 0, None, None, default_limit=50)
    )
    assert total == 1 and bodies[0]["data"]["session_id"] == recent.id
