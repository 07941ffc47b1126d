"""The outbox: event rows, the deliveries fanned out from them, and their attempts."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, bindparam, delete, exists, func, insert, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from ..domain.deliveries import DeliveryStatus
from . import prepared
from .paging import created_between, page_of
from .prepared import Prepared, among
from .tables import deliveries as d
from .tables import delivery_attempts as attempts
from .tables import events as ev
from .tables import replays as rp
from .tables import webhook_endpoints as ep
from .types import Instant

# The event body exactly as stored: the bytes every JSON webhook carries.
RAW_BODY = type_coerce(ev.c.body, Text).label("raw_body")

# The dispatcher's statements are prepared (prepared.py): compiled once per engine and run on
# the driver's connection, lists bound as one parameter (`among`); their parameters are bound
# per call (`now`, `busy`, `ids`, ...).
_NOW = bindparam("now", type_=Instant())
_DUE = and_(
    d.c.status == DeliveryStatus.PENDING.value,
    d.c.next_attempt_at <= _NOW,
    or_(d.c.claimed_until.is_(None), d.c.claimed_until < _NOW),
)
_ENDPOINT_ACTIVE = and_(ep.c.enabled.is_(True), ep.c.deleted_at.is_(None))
_HAS_WORK = Prepared(
    select(
        exists().where(ev.c.fanned_out_at.is_(None)).label("e"),
        exists().where(_DUE, d.c.endpoint_id == ep.c.id, _ENDPOINT_ACTIVE).label("d"),
    )
)
_HAS_NEW_EVENTS = Prepared(select(ev.c.position).where(ev.c.fanned_out_at.is_(None)).limit(1))
_NewEvent = namedtuple("_NewEvent", "position id game_id mode type created_at raw_body")
_NEW_EVENTS_ANY = (
    select(ev.c.position, ev.c.id, ev.c.game_id, ev.c.mode, ev.c.type, ev.c.created_at, RAW_BODY)
    .where(ev.c.fanned_out_at.is_(None))
    .order_by(ev.c.position)
    .limit(bindparam("limit"))
)
# On PostgreSQL rows another dispatcher holds are skipped.
_NEW_EVENTS = Prepared(
    lambda engine: _NEW_EVENTS_ANY.with_for_update(skip_locked=True) if engine == "postgresql" else _NEW_EVENTS_ANY
)


def _due_candidates(engine: str) -> Any:
    stmt = (
        select(d.c.id, d.c.endpoint_id)
        .select_from(d.join(ep, ep.c.id == d.c.endpoint_id))
        .where(
            _DUE,
            _ENDPOINT_ACTIVE,
            among(engine, d.c.endpoint_id, "busy", negate=True),
            among(engine, ep.c.mode.concat(":").concat(ep.c.game_id), "busy_scopes", negate=True),
            among(engine, ep.c.mode, "full_modes", negate=True),
        )
        .order_by(d.c.next_attempt_at)
        .limit(bindparam("limit"))
    )
    return stmt.with_for_update(skip_locked=True, of=d) if engine == "postgresql" else stmt


_Candidate = namedtuple("_Candidate", "id endpoint_id")
_DUE_CANDIDATES = Prepared(_due_candidates)
# Still due, as an expression no index serves: SQLite's planner, which has no statistics,
# would otherwise walk ix_deliveries_due over every due delivery instead of looking up the
# few ids by primary key (a claim then cost milliseconds with a backlog of thousands).
_STILL_DUE = and_(
    d.c.status.concat("") == DeliveryStatus.PENDING.value,
    d.c.next_attempt_at <= _NOW,
    or_(d.c.claimed_until.is_(None), d.c.claimed_until < _NOW),
)
_Claimed = namedtuple("_Claimed", "id event_id endpoint_id attempts created_at trigger")
_CLAIM = Prepared(
    lambda engine: (
        update(d)
        .where(among(engine, d.c.id, "ids"), _STILL_DUE)
        .values(claimed_by=bindparam("me"), claimed_until=bindparam("until", type_=Instant()), updated_at=_NOW)
        .returning(d.c.id, d.c.event_id, d.c.endpoint_id, d.c.attempts, d.c.created_at, d.c.trigger)
    )
)


async def has_work(conn: AsyncConnection, now: datetime) -> bool:
    """Cheap check before taking a write transaction: new events, or deliveries due."""
    row = await prepared.fetch_one(conn, _HAS_WORK, {"now": now})
    assert row is not None
    return bool(row[0] or row[1])


async def has_new_events(conn: AsyncConnection) -> bool:
    """Whether any event waits to be fanned out (one index probe)."""
    return await prepared.fetch_one(conn, _HAS_NEW_EVENTS, {}) is not None


async def new_events(conn: AsyncConnection, limit: int) -> list[Any]:
    """Events not yet fanned out, oldest first; on PostgreSQL rows another dispatcher holds are skipped."""
    return [_NewEvent(*r) for r in await prepared.fetch_all(conn, _NEW_EVENTS, {"limit": limit})]


_MARK_FANNED_OUT = Prepared(
    lambda engine: (
        update(ev)
        .where(among(engine, ev.c.position, "positions"))
        .values(fanned_out_at=bindparam("now", type_=Instant()))
    )
)


async def mark_fanned_out(conn: AsyncConnection, positions: Sequence[int], now: datetime) -> None:
    await prepared.execute(conn, _MARK_FANNED_OUT, {"positions": list(positions), "now": now})


DELIVERY_COLUMNS = [c.name for c in d.c]
_INSERT_DELIVERY = prepared.insert_of(d, DELIVERY_COLUMNS)


async def insert_deliveries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert deliveries, each row with every column (`DELIVERY_COLUMNS`)."""
    if rows:
        await prepared.execute_many(conn, _INSERT_DELIVERY, list(rows))


_INDEX_ORDER = Prepared(select(func.set_config("enable_sort", "off", True)))


async def prefer_index_order(conn: AsyncConnection) -> None:
    """PostgreSQL, for the rest of this transaction: take rows in an index's order rather than
    sorting them. With statistics from before a backlog built up, its planner would otherwise
    sort every due delivery in each lease round to keep the first few (milliseconds per
    thousand), where a walk of ix_deliveries_due stops after them."""
    if conn.dialect.name == "postgresql":
        await prepared.fetch_one(conn, _INDEX_ORDER, {})


async def due_candidates(
    conn: AsyncConnection,
    *,
    now: datetime,
    limit: int,
    busy: Sequence[str],
    busy_scopes: Sequence[str] = (),
    full_modes: Sequence[str] = (),
) -> list[Any]:
    """Due deliveries, oldest first, leaving out endpoints in `busy`, games (`mode:game_id`) in
    `busy_scopes` and modes in `full_modes` (at their concurrency here).

    Leaving busy ones out keeps one endpoint's or game's backlog from crowding out another's.
    On PostgreSQL the rows come locked, skipping those another dispatcher is claiming.
    """
    params = {
        "now": now,
        "limit": limit,
        "busy": list(busy),
        "busy_scopes": list(busy_scopes),
        "full_modes": list(full_modes),
    }
    return [_Candidate(*r) for r in await prepared.fetch_all(conn, _DUE_CANDIDATES, params)]


async def claim(conn: AsyncConnection, ids: Sequence[str], *, now: datetime, until: datetime, me: str) -> list[Any]:
    """Lease these deliveries to dispatcher `me`; returns the ones that were still due."""
    if not ids:
        return []
    params = {"ids": list(ids), "now": now, "until": until, "me": me}
    return [_Claimed(*r) for r in await prepared.fetch_all(conn, _CLAIM, params)]


_RELEASE = Prepared(
    lambda engine: (
        update(d)
        .where(
            among(engine, d.c.id, "ids"),
            d.c.claimed_by == bindparam("me"),
            d.c.status.concat("") == DeliveryStatus.PENDING.value,  # by primary key (see _STILL_DUE)
        )
        .values(claimed_by=None, claimed_until=None, updated_at=_NOW)
    )
)


async def release(conn: AsyncConnection, ids: Sequence[str], *, me: str, now: datetime) -> None:
    """End `me`'s leases on these deliveries (never attempted): due again for anyone."""
    if ids:
        await prepared.execute(conn, _RELEASE, {"ids": list(ids), "me": me, "now": now})


_EventBody = namedtuple("_EventBody", "id type created_at raw_body")
_EVENTS_BY_ID = Prepared(
    lambda engine: select(ev.c.id, ev.c.type, ev.c.created_at, RAW_BODY).where(among(engine, ev.c.id, "ids"))
)


async def events_by_id(conn: AsyncConnection, event_ids: Sequence[str]) -> dict[str, Any]:
    rows = await prepared.fetch_all(conn, _EVENTS_BY_ID, {"ids": list(set(event_ids))})
    return {r[0]: _EventBody(*r) for r in rows}


ATTEMPT_COLUMNS = [
    "delivery_id",
    "attempted_at",
    "status_code",
    "latency_ms",
    "response_excerpt",
    "error",
    "attempt_id",
    "event_id",
    "endpoint_id",
    "attempt_number",
    "trigger",
    "next_attempt_at",
]
# Inline: without fetching the new rows' ids back (RETURNING on PostgreSQL).
_INSERT_ATTEMPT = Prepared(insert(attempts).inline().values({name: bindparam(name) for name in ATTEMPT_COLUMNS}))
_RECORD = Prepared(
    update(d)
    .where(
        d.c.id == bindparam("b_id"),
        d.c.claimed_by == bindparam("b_by"),
        d.c.status.concat("") == DeliveryStatus.PENDING.value,  # by primary key (see _STILL_DUE)
    )
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next", type_=Instant()),
        claimed_by=None,
        claimed_until=None,
        updated_at=bindparam("b_now", type_=Instant()),
    )
)


async def record(
    conn: AsyncConnection, attempt_rows: Sequence[dict[str, Any]], outcomes: Sequence[dict[str, Any]]
) -> None:
    """Log attempts (rows with every column of `ATTEMPT_COLUMNS`) and move their deliveries on,
    only where the lease is still the sender's.

    `outcomes` carry b_id, b_by, b_status, b_attempts, b_next and b_now.
    """
    if attempt_rows:
        await prepared.execute_many(conn, _INSERT_ATTEMPT, list(attempt_rows))
    if outcomes:
        await prepared.execute_many(conn, _RECORD, list(outcomes))


async def get_event(conn: AsyncConnection, event_id: str, *, game_id: str, mode: str) -> Any:
    stmt = select(ev.c.position, ev.c.id, ev.c.type, ev.c.created_at).where(
        ev.c.id == event_id, ev.c.game_id == game_id, ev.c.mode == mode
    )
    return (await conn.execute(stmt)).first()


async def list_events(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    types: Sequence[str],
    after_position: int | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
    count_limit: int | None = None,
) -> tuple[list[Any], int]:
    """Newest first; with a cursor, the events committed after it, oldest first."""
    conditions: list[ColumnElement[bool]] = [ev.c.game_id == game_id, ev.c.mode == mode]
    if types:
        conditions.append(ev.c.type.in_(list(types)))
    if after_position is not None:
        conditions.append(ev.c.position > after_position)
    conditions += created_between(ev.c.created_at, created_from, created_to)
    order = ev.c.position.asc() if after_position is not None else ev.c.position.desc()
    rows, total = await page_of(conn, ev, [ev.c.body], conditions, [order], limit, offset, count_limit)
    return [r.body for r in rows], total


async def purge_events(conn: AsyncConnection, before: datetime, batch: int) -> int:
    """Delete up to `batch` events created before `before`, with their deliveries and attempts."""
    old = [
        r.id
        for r in await conn.execute(
            select(ev.c.id).where(ev.c.created_at < before).order_by(ev.c.position).limit(batch)
        )
    ]
    if not old:
        return 0
    doomed = select(d.c.id).where(d.c.event_id.in_(old)).scalar_subquery()
    await conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(doomed)))
    await conn.execute(delete(d).where(d.c.event_id.in_(old)))
    await conn.execute(delete(ev).where(ev.c.id.in_(old)))
    return len(old)


# Delivery attempts (ListDeliveryAttempts)

_SUCCEEDED = and_(attempts.c.error.is_(None), attempts.c.status_code >= 200, attempts.c.status_code < 300)


async def list_attempts(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    endpoint_id: str | None,
    event_id: str | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
    trigger: str | None = None,
) -> tuple[list[Any], int]:
    """Attempts to the scope's endpoints, newest first."""
    scope = select(ep.c.id).where(ep.c.game_id == game_id, ep.c.mode == mode).scalar_subquery()
    conditions: list[ColumnElement[bool]] = [attempts.c.endpoint_id.in_(scope), attempts.c.attempt_id.is_not(None)]
    if endpoint_id is not None:
        conditions.append(attempts.c.endpoint_id == endpoint_id)
    if event_id is not None:
        conditions.append(attempts.c.event_id == event_id)
    if trigger is not None:
        conditions.append(attempts.c.trigger == trigger)
    if status == "succeeded":
        conditions.append(_SUCCEEDED)
    elif status == "failed":
        conditions.append(~_SUCCEEDED)
    conditions += created_between(attempts.c.attempted_at, created_from, created_to)
    columns = [
        attempts.c.attempt_id,
        attempts.c.event_id,
        attempts.c.endpoint_id,
        attempts.c.attempt_number,
        attempts.c.status_code,
        attempts.c.latency_ms,
        attempts.c.response_excerpt,
        attempts.c.error,
        attempts.c.trigger,
        attempts.c.attempted_at,
        attempts.c.next_attempt_at,
    ]
    order = [attempts.c.attempted_at.desc(), attempts.c.id.desc()]
    return await page_of(conn, attempts, columns, conditions, order, limit, offset)


# Replays (ReplayEvents)


def _replay_events(
    *,
    game_id: str,
    mode: str,
    endpoint_id: str,
    types: Sequence[str],
    created_from: datetime,
    created_to: datetime | None,
    only_failed: bool,
) -> list[ColumnElement[bool]]:
    """Which events of the scope a replay to this endpoint sends (positions still to be bounded)."""
    conditions: list[ColumnElement[bool]] = [
        ev.c.game_id == game_id,
        ev.c.mode == mode,
        ev.c.created_at >= created_from,
    ]
    if created_to is not None:
        conditions.append(ev.c.created_at <= created_to)
    if types:
        conditions.append(ev.c.type.in_(list(types)))
    if only_failed:
        # The endpoint's latest delivery of the event failed (given up, or its last attempt failed).
        later = d.alias("later")
        conditions.append(
            exists().where(
                d.c.event_id == ev.c.id,
                d.c.endpoint_id == endpoint_id,
                or_(d.c.status == DeliveryStatus.FAILED, and_(d.c.status == DeliveryStatus.PENDING, d.c.attempts > 0)),
                ~exists()
                .where(
                    later.c.event_id == ev.c.id,
                    later.c.endpoint_id == endpoint_id,
                    later.c.created_at > d.c.created_at,
                )
                .correlate_except(later),
            )
        )
    return conditions


async def latest_position(conn: AsyncConnection, *, game_id: str, mode: str) -> int:
    stmt = select(func.max(ev.c.position)).where(ev.c.game_id == game_id, ev.c.mode == mode)
    return (await conn.execute(stmt)).scalar_one() or 0


async def count_replay(conn: AsyncConnection, *, upto: int, **selection: Any) -> int:
    stmt = select(func.count()).select_from(ev).where(*_replay_events(**selection), ev.c.position <= upto)
    return (await conn.execute(stmt)).scalar_one()


async def replay_rows(conn: AsyncConnection, *, upto: int, **selection: Any) -> list[Any]:
    """The selected events with their bodies (for selections of a few rare types)."""
    stmt = select(ev.c.id, ev.c.type, RAW_BODY).where(*_replay_events(**selection), ev.c.position <= upto)
    return list(await conn.execute(stmt))


async def insert_replay(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(insert(rp).values(**row))


async def unfinished_replays(conn: AsyncConnection, limit: int) -> list[Any]:
    stmt = select(rp).where(rp.c.finished_at.is_(None)).order_by(rp.c.created_at).limit(limit)
    return list(await conn.execute(stmt))


async def replay_backlog(conn: AsyncConnection, replay_id: str) -> int:
    """Deliveries of this replay not yet attempted successfully or given up."""
    stmt = select(func.count()).select_from(d).where(d.c.replay_id == replay_id, d.c.status == DeliveryStatus.PENDING)
    return (await conn.execute(stmt)).scalar_one()


async def next_replay_events(conn: AsyncConnection, replay: Any, limit: int) -> list[Any]:
    """The next events of a replay after its cursor, oldest first."""
    conditions = _replay_events(
        game_id=replay.game_id,
        mode=replay.mode,
        endpoint_id=replay.endpoint_id,
        types=list(replay.types),
        created_from=replay.created_from,
        created_to=replay.created_to,
        only_failed=replay.only_failed,
    )
    stmt = (
        select(ev.c.position, ev.c.id, ev.c.type, RAW_BODY)
        .where(*conditions, ev.c.position > replay.cursor, ev.c.position <= replay.upto)
        .order_by(ev.c.position)
        .limit(limit)
    )
    return list(await conn.execute(stmt))


async def advance_replay(
    conn: AsyncConnection, replay_id: str, *, cursor: int, fed: int, finished_at: datetime | None
) -> None:
    await conn.execute(update(rp).where(rp.c.id == replay_id).values(cursor=cursor, fed=fed, finished_at=finished_at))


async def replay_progress(conn: AsyncConnection, replay_ids: Sequence[str]) -> tuple[int, int]:
    """(deliveries of these replays attempted at least once, deliveries they make in all)."""
    total = (
        await conn.execute(select(func.coalesce(func.sum(rp.c.total), 0)).where(rp.c.id.in_(list(replay_ids))))
    ).scalar_one()
    done = (
        await conn.execute(
            select(func.count()).select_from(d).where(d.c.replay_id.in_(list(replay_ids)), d.c.attempts > 0)
        )
    ).scalar_one()
    return int(done), int(total)
