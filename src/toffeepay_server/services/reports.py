"""What the dashboard reads beyond the API's own lists: daily totals, timelines, health.

Every function takes the principal of a game and mode, so a page never sees another
game's or the other mode's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.listing import Page
from ..domain.payments import Dispute, Payment, PaymentStatus
from ..domain.sessions import Session
from ..domain.webhooks import Attempt as WebhookAttempt
from ..domain.webhooks import Endpoint
from ..store import reports as store
from . import fulfilment, webhooks
from .context import ServiceContext
from .sessions import get_session

HEALTH_WINDOW = timedelta(hours=24)
NEW_DISPUTES = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    created: int
    paid: int
    disputes: int
    # currency -> amount in minor units
    revenue: dict[str, int]

    @property
    def dispute_rate(self) -> float:
        return self.disputes / self.paid if self.paid else 0.0


@dataclass(frozen=True, slots=True)
class Overview:
    days: list[Day]
    currencies: list[str]

    @property
    def created(self) -> int:
        return sum(d.created for d in self.days)

    @property
    def paid(self) -> int:
        return sum(d.paid for d in self.days)

    @property
    def disputes(self) -> int:
        return sum(d.disputes for d in self.days)

    @property
    def dispute_rate(self) -> float:
        return self.disputes / self.paid if self.paid else 0.0

    def revenue(self, currency: str) -> int:
        return sum(d.revenue.get(currency, 0) for d in self.days)


def _day_number(value: date) -> int:
    return (value - date(1970, 1, 1)).days


def _midnight(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


# A day is closed (its totals never change again) this long after it ended: rows are
# stamped with their time before they commit, so a late commit may still land in it.
SETTLED_AFTER = timedelta(minutes=5)
# Totals of closed days, per database, game and mode: (created, paid, disputes, revenue).
_closed_days: dict[tuple[str, str, str], dict[int, tuple[int, int, int, dict[str, int]]]] = {}


async def _days(
    ctx: ServiceContext, principal: Principal, first: date, last: date
) -> dict[int, tuple[int, int, int, dict[str, int]]]:
    """Per UTC day in [first, last]: sessions created, paid, disputes, revenue per currency."""
    since, until = _midnight(first), _midnight(last + timedelta(days=1))
    game_id, mode = principal.game_id, principal.mode.value
    async with ctx.db.read() as conn:
        created = await store.sessions_per_day(conn, game_id=game_id, mode=mode, since=since, until=until)
        paid = await store.payments_per_day(conn, game_id=game_id, mode=mode, since=since, until=until)
        disputed = await store.disputes_per_day(conn, game_id=game_id, mode=mode, since=since, until=until)
    paid_count: dict[int, int] = {}
    revenue: dict[int, dict[str, int]] = {}
    for day, currency, count, amount in paid:
        paid_count[day] = paid_count.get(day, 0) + count
        revenue.setdefault(day, {})[currency] = amount
    return {
        n: (created.get(n, 0), paid_count.get(n, 0), disputed.get(n, 0), revenue.get(n, {}))
        for n in range(_day_number(first), _day_number(last) + 1)
    }


async def overview(ctx: ServiceContext, principal: Principal, *, days: int = 30) -> Overview:
    """Per UTC day, the last `days` days up to today: sessions created, paid, revenue, disputes.

    Days long over are counted once and kept (their totals cannot change); the days still
    open are counted on every call, so the page costs a scan of today's rows, not a month's.
    """
    now = ctx.clock().astimezone(UTC)
    today = now.date()
    first = today - timedelta(days=days - 1)
    open_from = (now - SETTLED_AFTER).date()
    cache = _closed_days.setdefault((ctx.db.url, principal.game_id, principal.mode.value), {})
    missing = [n for n in range(_day_number(first), _day_number(open_from)) if n not in cache]
    if missing:
        epoch = date(1970, 1, 1)
        cache.update(
            await _days(ctx, principal, epoch + timedelta(days=missing[0]), epoch + timedelta(days=missing[-1]))
        )
        for n in [n for n in cache if n < _day_number(first)]:
            del cache[n]
    totals = {**cache, **await _days(ctx, principal, open_from, today)}
    result = []
    for offset in range(days):
        value = first + timedelta(days=offset)
        created, paid, disputed, revenue = totals[_day_number(value)]
        result.append(Day(value, created, paid, disputed, revenue))
    currencies = sorted({c for d in result for c in d.revenue})
    return Overview(result, currencies)


async def list_payments(
    ctx: ServiceContext,
    principal: Principal,
    *,
    status: str | None,
    user_id: str | None,
    page: Page,
    count_limit: int | None = None,
) -> tuple[list[Payment], int]:
    parsed = None
    if status:
        try:
            parsed = PaymentStatus(status)
        except ValueError:
            raise DomainError(Reason.INVALID_STATUS, "status must be processing, succeeded or failed") from None
    async with ctx.db.read() as conn:
        return await store.list_payments(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            status=parsed,
            user_id=user_id,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
            count_limit=count_limit,
        )


async def list_disputes(
    ctx: ServiceContext, principal: Principal, *, user_id: str | None, page: Page, count_limit: int | None = None
) -> tuple[list[Dispute], int]:
    async with ctx.db.read() as conn:
        return await store.list_disputes(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            user_id=user_id,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
            count_limit=count_limit,
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    event_id: str
    endpoint_id: str
    url: str
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None
    event_type: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    id: str
    type: str
    sequence: int | None
    created_at: datetime
    attempts: list[Attempt] = field(default_factory=list)


def _attempt(row: Any) -> Attempt:
    return Attempt(
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        url=row.url,
        at=row.attempted_at,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        error=row.error,
        response_excerpt=row.response_excerpt,
        event_type=getattr(row, "type", None),
    )


async def timeline(ctx: ServiceContext, principal: Principal, session_id: str) -> tuple[Session, list[TimelineEvent]]:
    """A session and every event about it (in sequence), each with its delivery attempts."""
    session = await get_session(ctx, principal, session_id)
    async with ctx.db.read() as conn:
        rows = await store.session_events(conn, session.id)
        attempts = await store.attempts_of_events(conn, [r.id for r in rows])
    by_event: dict[str, list[Attempt]] = {}
    for row in attempts:
        by_event.setdefault(row.event_id, []).append(_attempt(row))
    return session, [TimelineEvent(r.id, r.type, r.sequence, r.created_at, by_event.get(r.id, [])) for r in rows]


@dataclass(frozen=True, slots=True)
class Health:
    """An endpoint with its health as the dispatcher records it, and its success rate over 24 hours."""

    endpoint: Endpoint
    attempts_24h: int
    succeeded_24h: int

    @property
    def success_rate(self) -> float | None:
        return self.succeeded_24h / self.attempts_24h if self.attempts_24h else None

    @property
    def failing_since(self) -> datetime | None:
        return self.endpoint.failing_since

    @property
    def last_success_at(self) -> datetime | None:
        return self.endpoint.last_success_at

    @property
    def last_failure_at(self) -> datetime | None:
        return self.endpoint.last_failure_at

    @property
    def failing(self) -> bool:
        return self.endpoint.failing_since is not None


async def endpoint_health(ctx: ServiceContext, principal: Principal) -> list[Health]:
    """The game's endpoints in this mode: enabled, failing since, last success and failure (kept
    by the dispatcher on each endpoint), and how many attempts succeeded in the last 24 hours."""
    since = ctx.clock() - HEALTH_WINDOW
    endpoints = await webhooks.list_endpoints(ctx, game_id=principal.game_id, mode=principal.mode)
    result = []
    for endpoint in endpoints:
        window = Page(1, 0, since, None)
        _, attempts = await webhooks.list_attempts(ctx, principal, endpoint_id=endpoint.id, page=window)
        _, succeeded = await webhooks.list_attempts(
            ctx, principal, endpoint_id=endpoint.id, status="succeeded", page=window
        )
        result.append(Health(endpoint, attempts, succeeded))
    return result


async def endpoint_attempts(
    ctx: ServiceContext, principal: Principal, endpoint_id: str, *, limit: int = 50
) -> tuple[Endpoint, list[WebhookAttempt]]:
    """An endpoint and its latest delivery attempts (every trigger: scheduled, manual, replay, test)."""
    endpoint = next(
        (
            e
            for e in await webhooks.list_endpoints(ctx, game_id=principal.game_id, mode=principal.mode)
            if e.id == endpoint_id
        ),
        None,
    )
    if endpoint is None:
        raise DomainError(Reason.NOT_FOUND, f"no webhook endpoint {endpoint_id!r}")
    attempts, _ = await webhooks.list_attempts(ctx, principal, endpoint_id=endpoint_id, page=Page(limit, 0, None, None))
    return endpoint, attempts


@dataclass(frozen=True, slots=True)
class Attention:
    failing: list[Health]
    new_disputes: list[Dispute]
    new_disputes_total: int
    unfulfilled: list[Session]
    unfulfilled_total: int


async def needs_attention(ctx: ServiceContext, principal: Principal) -> Attention:
    """Failing endpoints, paid sessions not fulfilled past the grace period, the disputes of the last 7 days."""
    health = await endpoint_health(ctx, principal)
    recent = Page(5, 0, ctx.clock() - NEW_DISPUTES, None)
    disputes, total = await list_disputes(ctx, principal, user_id=None, page=recent)
    unfulfilled, unfulfilled_total = await fulfilment.needs_attention(
        ctx, principal.game_id, principal.mode.value, limit=5
    )
    return Attention(
        [h for h in health if h.failing and h.endpoint.enabled], disputes, total, unfulfilled, unfulfilled_total
    )


async def get_dispute(ctx: ServiceContext, principal: Principal, dispute_id: str) -> Dispute:
    async with ctx.db.read() as conn:
        dispute = await store.get_dispute(conn, dispute_id, game_id=principal.game_id, mode=principal.mode.value)
    if dispute is None:
        raise DomainError(Reason.NOT_FOUND, f"no dispute {dispute_id!r}")
    return dispute


async def event(ctx: ServiceContext, principal: Principal, event_id: str) -> tuple[dict[str, Any], list[Attempt]]:
    """An event's body as sent, and every attempt to deliver it."""
    async with ctx.db.read() as conn:
        body = await store.event_body(conn, event_id[:64], game_id=principal.game_id, mode=principal.mode.value)
        if body is None:
            raise DomainError(Reason.NOT_FOUND, f"no event {event_id[:64]!r} (events are kept 30 days)")
        rows = await store.attempts_of_events(conn, [event_id])
    return body, [_attempt(r) for r in rows]
