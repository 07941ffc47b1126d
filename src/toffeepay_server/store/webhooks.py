"""Webhook endpoint rows."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.deliveries import DeliveryStatus
from ..domain.webhooks import Chaos, DisabledReason, Endpoint
from . import prepared
from .prepared import Prepared, among
from .tables import deliveries
from .tables import webhook_endpoints as t
from .types import Instant


def endpoint_from_row(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        game_id=row.game_id,
        mode=row.mode,
        url=row.url,
        format=row.format,
        events=tuple(row.events),
        enabled=row.enabled,
        description=row.description,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        disabled_reason=DisabledReason(row.disabled_reason) if row.disabled_reason else None,
        failing_since=row.failing_since,
        last_success_at=row.last_success_at,
        last_failure_at=row.last_failure_at,
        failing_reported_at=row.failing_reported_at,
        chaos=Chaos(**row.chaos) if row.chaos else None,
    )


def _values(e: Endpoint) -> dict[str, Any]:
    return {
        "url": e.url,
        "format": e.format,
        "events": list(e.events),
        "enabled": e.enabled,
        "description": e.description,
        "secret": e.secret,
        "previous_secret": e.previous_secret,
        "previous_secret_expires_at": e.previous_secret_expires_at,
        "deleted_at": e.deleted_at,
        "disabled_reason": e.disabled_reason,
        "failing_since": e.failing_since,
        "last_success_at": e.last_success_at,
        "last_failure_at": e.last_failure_at,
        "failing_reported_at": e.failing_reported_at,
        "chaos": e.chaos.as_dict() if e.chaos else None,
    }


async def insert_endpoint(conn: AsyncConnection, e: Endpoint) -> None:
    await conn.execute(insert(t).values(id=e.id, game_id=e.game_id, mode=e.mode, created_at=e.created_at, **_values(e)))


async def save_endpoint(conn: AsyncConnection, e: Endpoint) -> None:
    await conn.execute(update(t).where(t.c.id == e.id).values(**_values(e)))


async def get_endpoint(
    conn: AsyncConnection,
    endpoint_id: str,
    *,
    game_id: str | None = None,
    mode: str | None = None,
    for_update: bool = False,
) -> Endpoint | None:
    """A live (not deleted) endpoint, within a game and mode when given."""
    stmt = select(t).where(t.c.id == endpoint_id, t.c.deleted_at.is_(None))
    if game_id is not None:
        stmt = stmt.where(t.c.game_id == game_id, t.c.mode == mode)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return endpoint_from_row(row) if row else None


async def list_endpoints(conn: AsyncConnection, *, game_id: str, mode: str | None = None) -> list[Endpoint]:
    stmt = select(t).where(t.c.game_id == game_id, t.c.deleted_at.is_(None))
    if mode is not None:
        stmt = stmt.where(t.c.mode == mode)
    rows = await conn.execute(stmt.order_by(t.c.created_at, t.c.id))
    return [endpoint_from_row(r) for r in rows]


async def count_endpoints(conn: AsyncConnection, *, game_id: str, mode: str) -> int:
    stmt = select(func.count()).select_from(t).where(t.c.game_id == game_id, t.c.mode == mode, t.c.deleted_at.is_(None))
    return (await conn.execute(stmt)).scalar_one()


# The dispatcher's look-ups, prepared (prepared.py; their parameters bound per call).
_EndpointRow = namedtuple("_EndpointRow", [c.name for c in t.c])  # type: ignore[misc]
_OF_GAMES = Prepared(
    lambda engine: select(t).where(among(engine, t.c.game_id, "games"), t.c.enabled.is_(True), t.c.deleted_at.is_(None))
)
_BY_ID = Prepared(lambda engine: select(t).where(among(engine, t.c.id, "ids")))


async def endpoints_of_scopes(conn: AsyncConnection, scopes: Sequence[tuple[str, str]]) -> list[Endpoint]:
    """Enabled, live endpoints of these (game, mode) pairs: the candidates of a fan-out."""
    found = await prepared.fetch_all(conn, _OF_GAMES, {"games": sorted({game for game, _ in scopes})})
    wanted = set(scopes)
    rows: list[Any] = [_EndpointRow(*r) for r in found]
    return [endpoint_from_row(r) for r in rows if (r.game_id, r.mode) in wanted]


async def fail_pending_deliveries(conn: AsyncConnection, endpoint_id: str, now: datetime) -> None:
    """A deleted endpoint gets nothing more."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == DeliveryStatus.PENDING.value)
        .values(status=DeliveryStatus.FAILED.value, next_attempt_at=None, updated_at=now)
    )


async def endpoints_by_id(conn: AsyncConnection, endpoint_ids: Sequence[str]) -> dict[str, Endpoint]:
    found = await prepared.fetch_all(conn, _BY_ID, {"ids": list(set(endpoint_ids))})
    rows: list[Any] = [_EndpointRow(*r) for r in found]
    return {r.id: endpoint_from_row(r) for r in rows}


@dataclass(frozen=True, slots=True)
class Health:
    """A batch of attempts to one endpoint: its last success and failure, and `failing_from`, the
    first failure after the batch's last success (None when the last attempt succeeded, which
    ends the run of failures)."""

    endpoint_id: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failing_from: datetime | None


_FAILING_FROM = bindparam("failing_from", type_=Instant())
# One statement for every case: a time left out (None) keeps the stored one.
_RECORD_HEALTH = Prepared(
    update(t)
    .where(t.c.id == bindparam("endpoint_id"))
    .values(
        last_success_at=func.coalesce(bindparam("last_success_at", type_=Instant()), t.c.last_success_at),
        last_failure_at=func.coalesce(bindparam("last_failure_at", type_=Instant()), t.c.last_failure_at),
        failing_since=case((_FAILING_FROM.is_(None), null()), else_=func.coalesce(t.c.failing_since, _FAILING_FROM)),
        failing_reported_at=case((_FAILING_FROM.is_(None), null()), else_=t.c.failing_reported_at),
    )
)


async def record_health(conn: AsyncConnection, health: Sequence[Health]) -> None:
    """Note batches of attempts, in the order given (endpoint ids in order: see services.outbox.record)."""
    if health:
        rows = [
            {
                "endpoint_id": h.endpoint_id,
                "last_success_at": h.last_success_at,
                "last_failure_at": h.last_failure_at,
                "failing_from": h.failing_from,
            }
            for h in health
        ]
        await prepared.execute_many(conn, _RECORD_HEALTH, rows)


async def endpoints_to_report(
    conn: AsyncConnection, *, warn_before: datetime, disable_before: datetime, lock: bool = True
) -> list[Endpoint]:
    """Enabled endpoints failing since before `warn_before` not yet reported, or since before
    `disable_before`; with `lock`, locked for the change."""
    stmt = select(t).where(
        t.c.deleted_at.is_(None),
        t.c.enabled.is_(True),
        t.c.failing_since.is_not(None),
        or_(
            and_(t.c.failing_reported_at.is_(None), t.c.failing_since <= warn_before),
            t.c.failing_since <= disable_before,
        ),
    )
    if lock:
        stmt = stmt.with_for_update()
    return [endpoint_from_row(r) for r in await conn.execute(stmt)]
