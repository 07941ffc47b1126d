"""The dispatcher's transactions: fan events out to deliveries, lease due ones, record attempts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..domain import ids
from ..domain.deliveries import DeliveryStatus, after_attempt
from ..domain.webhooks import EVENT_RETENTION, Endpoint
from ..store import outbox as store
from ..store import webhooks as endpoint_store
from ..store.database import UnitOfWork
from .context import ServiceContext

FAN_OUT_BATCH = 500
PURGE_BATCH = 1000


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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got, and what comes next (nothing when it succeeded or was the last)."""

    job: Job
    attempted_at: datetime
    latency_ms: int
    status_code: int | None
    excerpt: str | None
    error: str | None
    succeeded: bool
    next_attempt_at: datetime | None


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
        taken, room = self.scopes[scope], self.limits.per_mode - self.modes[mode]
        return (
            taken >= self.limits.per_scope
            or room <= 0
            or (taken >= self.limits.guaranteed and room <= self.limits.reserve)
        )

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
    rows = await store.new_events(uow.conn, ctx.db.dialect, FAN_OUT_BATCH)
    if not rows:
        return 0, [], False
    by_scope: dict[tuple[str, str], list[Endpoint]] = defaultdict(list)
    for endpoint in await endpoint_store.endpoints_of_scopes(uow.conn, [(r.game_id, r.mode) for r in rows]):
        by_scope[(endpoint.game_id, endpoint.mode)].append(endpoint)
    deliveries, jobs = [], []
    for row in rows:
        for endpoint in by_scope[(row.game_id, row.mode)]:
            if not endpoint.wants(row.type) or endpoint.created_at > row.created_at:
                continue
            delivery_id = ctx.new_id(ids.DELIVERY)
            mine = capacity.take(endpoint)
            deliveries.append(
                {
                    "id": delivery_id,
                    "event_id": row.id,
                    "endpoint_id": endpoint.id,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "claimed_by": me if mine else None,
                    "claimed_until": until if mine else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if mine:
                jobs.append(Job(delivery_id, 1, now, row.id, row.type, row.raw_body, endpoint))
    await store.insert_deliveries(uow.conn, deliveries)
    await store.mark_fanned_out(uow.conn, [row.position for row in rows], now)
    return len(rows), jobs, len(jobs) < len(deliveries)


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
    limit = min(room, 4 * capacity.limits.per_endpoint)
    candidates = await store.due_candidates(
        uow.conn,
        ctx.db.dialect,
        now=now,
        limit=limit,
        busy=capacity.busy(),
        busy_scopes=capacity.busy_scopes(),
        full_modes=capacity.full_modes(),
    )
    endpoints = await endpoint_store.endpoints_by_id(uow.conn, [c.endpoint_id for c in candidates])
    chosen = [c.id for c in candidates if capacity.take(endpoints[c.endpoint_id])]
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
        )
        for r in leased
    ]
    return jobs, more


async def record(ctx: ServiceContext, *, me: str, outcomes: Sequence[Outcome]) -> None:
    """Log each attempt and move its delivery on (succeeded, retry later, or failed for good)."""
    now = ctx.clock()
    attempts = [
        {
            "delivery_id": o.job.delivery_id,
            "attempted_at": o.attempted_at,
            "status_code": o.status_code,
            "latency_ms": o.latency_ms,
            "response_excerpt": o.excerpt,
            "error": o.error,
        }
        for o in outcomes
    ]
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
        await store.record(uow.conn, attempts, moves)


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
