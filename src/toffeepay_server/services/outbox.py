"""The dispatcher's transactions: fan events out to deliveries, lease due ones, record attempts."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..domain import events as event_rules
from ..domain import ids
from ..domain.deliveries import DeliveryStatus, after_attempt
from ..domain.webhooks import EVENT_RETENTION, DisabledReason, Endpoint
from ..store import outbox as store
from ..store import webhooks as endpoint_store
from ..store.database import UnitOfWork
from .context import ServiceContext

FAN_OUT_BATCH = 500
# At most this many due deliveries looked at (and on PostgreSQL locked) per lease round.
MAX_CANDIDATES = 256
PURGE_BATCH = 1000
# A replay keeps at most this many of its deliveries waiting, fed this many at a time.
REPLAY_WINDOW = 1000
REPLAY_BATCH = 500


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt to send, leased to one dispatcher."""

    delivery_id: str
    attempt: int
    delivery_created_at: datetime
    event_id: str
    event_type: str
    body: str
    endpoint: Endpoint
    # scheduled | manual | replay | test
    trigger: str = "scheduled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one attempt got, and what comes next (nothing when it succeeded or was the last)."""

    job: Job
    attempted_at: datetime
    succeeded: bool
    latency_ms: int = 0
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests one dispatcher keeps in flight: per endpoint, per game and mode, and per mode.

    Each mode has its own pool, so sandbox traffic never takes live's room. Within a mode a
    game holds at most `per_scope`; and once a game has `guaranteed` requests in flight it
    may not take the last `reserve` slots, which stay for games that have fewer, so however
    many slow endpoints some games have, every other game can still send at once.
    """

    per_endpoint: int = 16
    per_scope: int = 64
    per_mode: int = 256
    guaranteed: int = 4

    @property
    def reserve(self) -> int:
        return self.per_mode // 4

    def times(self, factor: int) -> Limits:
        """The same shares, `factor` times as large (what a dispatcher may hold leased)."""
        return Limits(
            per_endpoint=self.per_endpoint * factor,
            per_scope=self.per_scope * factor,
            per_mode=self.per_mode * factor,
            guaranteed=self.guaranteed * factor,
        )

    def scope_full(self, taken: int, in_mode: int) -> bool:
        """Whether a game with `taken` slots, in a mode with `in_mode` taken, can take no more."""
        room = self.per_mode - in_mode
        return taken >= self.per_scope or room <= 0 or (taken >= self.guaranteed and room <= self.reserve)


def scope_key(game_id: str, mode: str) -> str:
    return f"{mode}:{game_id}"


class Capacity:
    """How much more a dispatcher can send now, per endpoint, game and mode, and mode."""

    def __init__(
        self, limits: Limits, endpoints: Mapping[str, int], scopes: Mapping[str, int], modes: Mapping[str, int]
    ) -> None:
        self.limits = limits
        self.endpoints = Counter(endpoints)
        self.scopes = Counter(scopes)
        self.modes = Counter(modes)

    def _scope_full(self, scope: str, mode: str) -> bool:
        return self.limits.scope_full(self.scopes[scope], self.modes[mode])

    def busy(self) -> list[str]:
        """Endpoints that can take nothing more now."""
        return [e for e, n in self.endpoints.items() if n >= self.limits.per_endpoint]

    def busy_scopes(self) -> list[str]:
        """Games (as `mode:game_id`) that can take nothing more now."""
        return [s for s in self.scopes if self._scope_full(s, s.partition(":")[0])]

    def full_modes(self) -> list[str]:
        return [m for m, n in self.modes.items() if n >= self.limits.per_mode]

    def room(self) -> int:
        return sum(max(0, self.limits.per_mode - self.modes[m]) for m in ("live", "sandbox"))

    def take(self, endpoint: Endpoint) -> bool:
        """Reserve a slot for one more request to this endpoint, if there is one."""
        scope = scope_key(endpoint.game_id, endpoint.mode)
        if self.endpoints[endpoint.id] >= self.limits.per_endpoint or self._scope_full(scope, endpoint.mode):
            return False
        self.endpoints[endpoint.id] += 1
        self.scopes[scope] += 1
        self.modes[endpoint.mode] += 1
        return True


async def has_work(ctx: ServiceContext) -> bool:
    """New events to fan out, or deliveries due."""
    async with ctx.db.read() as conn:
        return await store.has_work(conn, ctx.clock())


async def has_new_events(ctx: ServiceContext) -> bool:
    async with ctx.db.lookup() as conn:
        return await store.has_new_events(conn)


@dataclass(frozen=True, slots=True)
class Leased:
    """What one lease round did: events fanned out, jobs leased, and whether due work was left."""

    events: int
    jobs: list[Job]
    backlog: bool


async def lease_work(
    ctx: ServiceContext, *, me: str, lease: timedelta, capacity: Capacity, claim_due: bool = True
) -> Leased:
    """One transaction: fan new events out to deliveries, then (with `claim_due`) lease due
    ones while there is room."""
    now = ctx.clock()
    async with ctx.db.transaction() as uow:
        handled, jobs, left = await _fan_out(ctx, uow, now, me, now + lease, capacity)
        full = False
        if claim_due:
            claimed, full = await _claim_due(ctx, uow, now, me, now + lease, capacity)
            jobs += claimed
    return Leased(handled, jobs, left or full)


async def _fan_out(
    ctx: ServiceContext, uow: UnitOfWork, now: datetime, me: str, until: datetime, capacity: Capacity
) -> tuple[int, list[Job], bool]:
    """One delivery per new event and endpoint that wants it (registered by the event's time).

    Deliveries there is room for are leased to `me` at once; the rest wait, due now, for any
    dispatcher. Returns the events handled, the jobs, and whether some deliveries were left.
    """
    rows = await store.new_events(uow.conn, FAN_OUT_BATCH)
    if not rows:
        return 0, [], False
    by_scope: dict[tuple[str, str], list[Endpoint]] = defaultdict(list)
    for endpoint in await endpoint_store.endpoints_of_scopes(uow.conn, [(r.game_id, r.mode) for r in rows]):
        by_scope[(endpoint.game_id, endpoint.mode)].append(endpoint)
    deliveries, jobs = [], []
    for row in rows:
        about = _subject_endpoint(row)
        for endpoint in by_scope[(row.game_id, row.mode)]:
            if not endpoint.wants(row.type) or endpoint.created_at > row.created_at or endpoint.id == about:
                continue
            for delay in _chaos_delays(ctx, endpoint):
                delivery_id = ctx.new_id(ids.DELIVERY)
                mine = delay is None and capacity.take(endpoint)
                deliveries.append(
                    delivery_row(
                        delivery_id,
                        row.id,
                        endpoint.id,
                        now + (delay or timedelta(0)),
                        now,
                        claimed_by=me if mine else None,
                    )
                    | {"claimed_until": until if mine else None}
                )
                if mine:
                    jobs.append(Job(delivery_id, 1, now, row.id, row.type, row.raw_body, endpoint))
    await store.insert_deliveries(uow.conn, deliveries)
    await store.mark_fanned_out(uow.conn, [row.position for row in rows], now)
    return len(rows), jobs, len(jobs) < len(deliveries)


def delivery_row(
    delivery_id: str,
    event_id: str,
    endpoint_id: str,
    due: datetime,
    now: datetime,
    *,
    trigger: str = "scheduled",
    replay_id: str | None = None,
    claimed_by: str | None = None,
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": due,
        "claimed_by": claimed_by,
        "claimed_until": None,
        "created_at": now,
        "updated_at": now,
        "trigger": trigger,
        "replay_id": replay_id,
    }


def _subject_endpoint(row: Any) -> str | None:
    """The endpoint an `endpoint.*` event is about: it goes to the game's other endpoints."""
    if row.type not in event_rules.ENDPOINT_EVENTS:
        return None
    return json.loads(row.raw_body)["data"].get("endpoint_id")


def _chaos_delays(ctx: ServiceContext, endpoint: Endpoint) -> list[timedelta | None]:
    """One delivery, sent at once (None); with chaos, maybe late, maybe twice."""
    chaos = endpoint.chaos
    if chaos is None:
        return [None]
    copies = 2 if ctx.rng.uniform(0, 100) < chaos.duplicate_percent else 1
    if not chaos.delay_max_seconds:
        return [None] * copies
    return [timedelta(seconds=ctx.rng.uniform(0, chaos.delay_max_seconds)) for _ in range(copies)]


async def _claim_due(
    ctx: ServiceContext, uow: UnitOfWork, now: datetime, me: str, until: datetime, capacity: Capacity
) -> tuple[list[Job], bool]:
    """Lease due deliveries (retries, and those fan-out had no room for), fairly across endpoints.

    Also says whether more may be due than this round could take.
    """
    room = capacity.room()
    if room <= 0:
        return [], True
    # A few endpoints' worth per round; endpoints and games that can take nothing more are left
    # out, so rounds rotate among the rest and one game's backlog never crowds out another's.
    limit = min(room, 4 * capacity.limits.per_endpoint, MAX_CANDIDATES)
    await store.prefer_index_order(uow.conn)
    candidates = await store.due_candidates(
        uow.conn,
        now=now,
        limit=limit,
        busy=capacity.busy(),
        busy_scopes=capacity.busy_scopes(),
        full_modes=capacity.full_modes(),
    )
    endpoints = await endpoint_store.endpoints_by_id(uow.conn, [c.endpoint_id for c in candidates])
    chosen, full = [], set()
    for c in candidates:
        # Once an endpoint (or its game) can take no more, none of its later candidates fits either.
        if c.endpoint_id not in full:
            if capacity.take(endpoints[c.endpoint_id]):
                chosen.append(c.id)
            else:
                full.add(c.endpoint_id)
    more = len(candidates) == limit or len(chosen) < len(candidates)
    leased = await store.claim(uow.conn, chosen, now=now, until=until, me=me)
    if not leased:
        return [], more
    events = await store.events_by_id(uow.conn, [r.event_id for r in leased])
    jobs = [
        Job(
            r.id,
            r.attempts + 1,
            r.created_at,
            r.event_id,
            events[r.event_id].type,
            events[r.event_id].raw_body,
            endpoints[r.endpoint_id],
            r.trigger or "scheduled",
        )
        for r in leased
    ]
    return jobs, more


async def release(ctx: ServiceContext, *, me: str, delivery_ids: Sequence[str]) -> None:
    """Give back leases of `me` on deliveries it did not attempt: due again for any dispatcher."""
    async with ctx.db.transaction() as uow:
        await store.release(uow.conn, delivery_ids, me=me, now=ctx.clock())
        uow.wake_dispatchers()


def attempt_row(ctx: ServiceContext, o: Outcome) -> dict[str, Any]:
    return {
        "delivery_id": o.job.delivery_id,
        "attempted_at": o.attempted_at,
        "status_code": o.status_code,
        "latency_ms": o.latency_ms,
        "response_excerpt": o.excerpt,
        "error": o.error,
        "attempt_id": ctx.new_id(ids.ATTEMPT),
        "event_id": o.job.event_id,
        "endpoint_id": o.job.endpoint.id,
        "attempt_number": o.job.attempt,
        "trigger": o.job.trigger,
        "next_attempt_at": o.next_attempt_at,
    }


async def record_health(uow: UnitOfWork, outcomes: Sequence[Outcome]) -> None:
    """Move each endpoint's health on: last success and failure, and the current run of failures."""
    by_endpoint: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_endpoint[o.job.endpoint.id].append(o)
    health = []
    for endpoint_id, mine in sorted(by_endpoint.items()):
        mine.sort(key=lambda o: o.attempted_at)
        successes = [o.attempted_at for o in mine if o.succeeded]
        failures = [o.attempted_at for o in mine if not o.succeeded]
        last_success = successes[-1] if successes else None
        since = [at for at in failures if last_success is None or at > last_success]
        health.append(
            endpoint_store.Health(
                endpoint_id,
                last_success_at=last_success,
                last_failure_at=failures[-1] if failures else None,
                failing_from=since[0] if since else None,
            )
        )
    await endpoint_store.record_health(uow.conn, health)


async def record(ctx: ServiceContext, *, me: str, outcomes: Sequence[Outcome]) -> None:
    """Log each attempt and move its delivery on (succeeded, retry later, or failed for good)."""
    now = ctx.clock()
    attempts = [attempt_row(ctx, o) for o in outcomes]
    moves = [
        {
            "b_id": o.job.delivery_id,
            "b_by": me,
            "b_status": after_attempt(
                DeliveryStatus.PENDING, succeeded=o.succeeded, next_attempt_at=o.next_attempt_at
            ).value,
            "b_attempts": o.job.attempt,
            "b_next": o.next_attempt_at,
            "b_now": now,
        }
        for o in outcomes
    ]
    async with ctx.db.transaction() as uow:
        # Endpoints before their deliveries, in id order: the order every transaction that
        # changes both takes its locks in (disabling or deleting an endpoint), so none deadlock.
        await record_health(uow, outcomes)
        await store.record(uow.conn, attempts, moves)


async def report_failing_endpoints(ctx: ServiceContext) -> int:
    """Report endpoints failing for the warn period (endpoint.failing) and disable those failing
    for the disable period (endpoint.disabled), each event to the game's other endpoints of that
    mode; returns how many endpoints changed."""
    now = ctx.clock()
    bounds = {"warn_before": now - ctx.webhook_warn_after, "disable_before": now - ctx.webhook_disable_after}
    async with ctx.db.read() as conn:  # most of the time there is nothing to do: no write lock for that
        if not await endpoint_store.endpoints_to_report(conn, **bounds, lock=False):
            return 0
    async with ctx.db.transaction() as uow:
        found = await endpoint_store.endpoints_to_report(
            uow.conn, warn_before=now - ctx.webhook_warn_after, disable_before=now - ctx.webhook_disable_after
        )
        for endpoint in found:
            assert endpoint.failing_since is not None
            changed = replace(endpoint, failing_reported_at=endpoint.failing_reported_at or now)
            types = [] if endpoint.failing_reported_at else [event_rules.ENDPOINT_FAILING]
            if endpoint.failing_since <= now - ctx.webhook_disable_after:
                changed = changed.disable(DisabledReason.FAILING)
                types.append(event_rules.ENDPOINT_DISABLED)
                await endpoint_store.fail_pending_deliveries(uow.conn, endpoint.id, now)
            await endpoint_store.save_endpoint(uow.conn, changed)
            for event_type in types:
                uow.add_event(
                    event_rules.Event(
                        id=ctx.new_event_id(),
                        type=event_type,
                        game_id=endpoint.game_id,
                        mode=endpoint.mode,
                        session_id=None,
                        sequence=None,
                        created_at=now,
                        data=event_rules.endpoint_data(endpoint),
                    )
                )
    return len(found)


async def feed_replays(ctx: ServiceContext) -> int:
    """Give unfinished replays their next batch of deliveries where their backlog is short;
    returns the deliveries added."""
    added = 0
    async with ctx.db.read() as conn:
        pending = await store.unfinished_replays(conn, 20)
    for replay in pending:
        async with ctx.db.transaction() as uow:
            if await store.replay_backlog(uow.conn, replay.id) > REPLAY_WINDOW - REPLAY_BATCH:
                continue
            endpoint = await endpoint_store.get_endpoint(uow.conn, replay.endpoint_id)
            now = ctx.clock()
            if endpoint is None or not endpoint.enabled:
                await store.advance_replay(uow.conn, replay.id, cursor=replay.cursor, fed=replay.fed, finished_at=now)
                continue
            rows = await store.next_replay_events(uow.conn, replay, REPLAY_BATCH)
            deliveries = [
                delivery_row(
                    ctx.new_id(ids.DELIVERY), r.id, endpoint.id, now, now, trigger="replay", replay_id=replay.id
                )
                for r in rows
                if _subject_endpoint(r) != endpoint.id  # never an endpoint's own failing/disabled event
            ]
            await store.insert_deliveries(uow.conn, deliveries)
            await store.advance_replay(
                uow.conn,
                replay.id,
                cursor=rows[-1].position if rows else replay.cursor,
                fed=replay.fed + len(deliveries),
                finished_at=now if len(rows) < REPLAY_BATCH else None,
            )
            if rows:
                uow.wake_dispatchers()
            added += len(deliveries)
    return added


async def purge_old_events(ctx: ServiceContext) -> int:
    """Delete events past retention (30 days) with their deliveries and attempts."""
    before = ctx.clock() - EVENT_RETENTION
    total = 0
    while True:
        async with ctx.db.transaction() as uow:
            deleted = await store.purge_events(uow.conn, before, PURGE_BATCH)
        total += deleted
        if deleted < PURGE_BATCH:
            return total
