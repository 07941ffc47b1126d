"""Read-only queries behind the dashboard: daily totals, a session's timeline, endpoint health."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from ..domain.payments import Dispute, Payment, PaymentStatus
from .paging import created_between, page_of
from .payments import dispute_from_row, payment_from_row
from .tables import deliveries, delivery_attempts, disputes, events, payments, sessions, webhook_endpoints

DAY_MICROS = 86_400_000_000


def _day(column: Any) -> Any:
    """The UTC day number (days since the epoch) of an Instant column, computed by the database."""
    return (type_coerce(column, BigInteger) // DAY_MICROS).label("day")


async def sessions_per_day(
    conn: AsyncConnection, *, game_id: str, mode: str, since: datetime, until: datetime
) -> dict[int, int]:
    """Sessions created per UTC day in [since, until)."""
    day = _day(sessions.c.created_at)
    rows = await conn.execute(
        select(day, func.count())
        .where(
            sessions.c.game_id == game_id,
            sessions.c.mode == mode,
            sessions.c.created_at >= since,
            sessions.c.created_at < until,
        )
        .group_by(day)
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def payments_per_day(
    conn: AsyncConnection, *, game_id: str, mode: str, since: datetime, until: datetime
) -> list[tuple[int, str, int, int]]:
    """(day, currency, count, amount) of payments that succeeded in [since, until), by the day they succeeded."""
    day = _day(payments.c.succeeded_at)
    rows = await conn.execute(
        select(day, payments.c.currency, func.count(), func.sum(payments.c.amount))
        .where(
            payments.c.game_id == game_id,
            payments.c.mode == mode,
            payments.c.status == PaymentStatus.SUCCEEDED.value,
            payments.c.succeeded_at >= since,
            payments.c.succeeded_at < until,
        )
        .group_by(day, payments.c.currency)
    )
    return [(int(r[0]), r[1], int(r[2]), int(r[3])) for r in rows]


async def disputes_per_day(
    conn: AsyncConnection, *, game_id: str, mode: str, since: datetime, until: datetime
) -> dict[int, int]:
    day = _day(disputes.c.created_at)
    rows = await conn.execute(
        select(day, func.count())
        .where(
            disputes.c.game_id == game_id,
            disputes.c.mode == mode,
            disputes.c.created_at >= since,
            disputes.c.created_at < until,
        )
        .group_by(day)
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def list_payments(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    status: PaymentStatus | None,
    user_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
    count_limit: int | None = None,
) -> tuple[list[Payment], int]:
    """Payments of every status (the API's ListPayments shows succeeded ones only)."""
    conditions: list[ColumnElement[bool]] = [payments.c.game_id == game_id, payments.c.mode == mode]
    if status is not None:
        conditions.append(payments.c.status == status.value)
    if user_id is not None:
        conditions.append(payments.c.user_id == user_id)
    conditions += created_between(payments.c.created_at, created_from, created_to)
    rows, total = await page_of(
        conn,
        payments,
        [payments],
        conditions,
        [payments.c.created_at.desc(), payments.c.id.desc()],
        limit,
        offset,
        count_limit,
    )
    return [payment_from_row(r) for r in rows], total


async def list_disputes(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    user_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
    count_limit: int | None = None,
) -> tuple[list[Dispute], int]:
    conditions: list[ColumnElement[bool]] = [disputes.c.game_id == game_id, disputes.c.mode == mode]
    if user_id is not None:
        conditions.append(disputes.c.user_id == user_id)
    conditions += created_between(disputes.c.created_at, created_from, created_to)
    rows, total = await page_of(
        conn,
        disputes,
        [disputes],
        conditions,
        [disputes.c.created_at.desc(), disputes.c.id.desc()],
        limit,
        offset,
        count_limit,
    )
    return [dispute_from_row(r) for r in rows], total


async def session_events(conn: AsyncConnection, session_id: str) -> list[Any]:
    rows = await conn.execute(
        select(events.c.id, events.c.type, events.c.sequence, events.c.created_at)
        .where(events.c.session_id == session_id)
        .order_by(events.c.position)
    )
    return list(rows)


# A 2xx answer; an attempt with no answer (status_code NULL) is a failure.
_OK = and_(
    delivery_attempts.c.status_code.is_not(None),
    delivery_attempts.c.status_code >= 200,
    delivery_attempts.c.status_code < 300,
)

_ATTEMPT_COLUMNS = (
    delivery_attempts.c.attempted_at,
    delivery_attempts.c.status_code,
    delivery_attempts.c.latency_ms,
    delivery_attempts.c.error,
    delivery_attempts.c.response_excerpt,
    deliveries.c.event_id,
    deliveries.c.endpoint_id,
    webhook_endpoints.c.url,
)


def _attempts() -> Any:
    return (
        select(*_ATTEMPT_COLUMNS)
        .select_from(delivery_attempts)
        .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == deliveries.c.endpoint_id)
    )


async def attempts_of_events(conn: AsyncConnection, event_ids: Sequence[str]) -> list[Any]:
    if not event_ids:
        return []
    rows = await conn.execute(
        _attempts().where(deliveries.c.event_id.in_(list(event_ids))).order_by(delivery_attempts.c.attempted_at)
    )
    return list(rows)


async def get_dispute(conn: AsyncConnection, dispute_id: str, *, game_id: str, mode: str) -> Dispute | None:
    row = (
        await conn.execute(
            select(disputes).where(disputes.c.id == dispute_id, disputes.c.game_id == game_id, disputes.c.mode == mode)
        )
    ).first()
    return dispute_from_row(row) if row else None


async def event_body(conn: AsyncConnection, event_id: str, *, game_id: str, mode: str) -> Any:
    row = (
        await conn.execute(
            select(events.c.body).where(events.c.id == event_id, events.c.game_id == game_id, events.c.mode == mode)
        )
    ).first()
    return row.body if row else None
