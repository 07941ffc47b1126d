"""Refund rows and queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.refunds import TAKEN, Refund, RefundFailureCode, RefundReason, RefundStatus
from .paging import created_between, page_of
from .tables import refunds


def refund_from_row(row: Any) -> Refund:
    return Refund(
        id=row.id,
        payment_id=row.payment_id,
        session_id=row.session_id,
        game_id=row.game_id,
        mode=row.mode,
        user_id=row.user_id,
        amount=row.amount,
        currency=row.currency,
        reason=RefundReason(row.reason),
        status=RefundStatus(row.status),
        processor=row.processor,
        processor_ref=row.processor_ref,
        failure_code=RefundFailureCode(row.failure_code) if row.failure_code else None,
        created_at=row.created_at,
        succeeded_at=row.succeeded_at,
        failed_at=row.failed_at,
    )


async def insert_refund(conn: AsyncConnection, r: Refund) -> None:
    await conn.execute(
        insert(refunds).values(
            id=r.id,
            payment_id=r.payment_id,
            session_id=r.session_id,
            game_id=r.game_id,
            mode=r.mode,
            user_id=r.user_id,
            amount=r.amount,
            currency=r.currency,
            reason=r.reason.value,
            status=r.status.value,
            processor=r.processor,
            processor_ref=r.processor_ref,
            created_at=r.created_at,
        )
    )


async def taken(conn: AsyncConnection, payment_id: str) -> int:
    """What pending and succeeded refunds of a payment add up to."""
    total = await conn.scalar(
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
            refunds.c.payment_id == payment_id, refunds.c.status.in_([s.value for s in TAKEN])
        )
    )
    return int(total or 0)


async def save_settlement(conn: AsyncConnection, before: Refund, r: Refund) -> bool:
    """Write a settled refund only if its status is still as read (compare-and-set).

    Which moves are allowed is the domain's transition table; this only guards against a concurrent writer.
    """
    result = await conn.execute(
        update(refunds)
        .where(refunds.c.id == r.id, refunds.c.status == before.status.value)
        .values(
            status=r.status.value,
            processor_ref=r.processor_ref,
            failure_code=r.failure_code.value if r.failure_code else None,
            succeeded_at=r.succeeded_at,
            failed_at=r.failed_at,
        )
    )
    return result.rowcount == 1


async def set_processor_ref(conn: AsyncConnection, refund_id: str, processor_ref: str) -> None:
    """Record the processor's own id of a refund, unless one is already known."""
    await conn.execute(
        update(refunds)
        .where(refunds.c.id == refund_id, refunds.c.processor_ref.is_(None))
        .values(processor_ref=processor_ref)
    )


async def get_refund(
    conn: AsyncConnection,
    refund_id: str,
    *,
    game_id: str | None = None,
    mode: str | None = None,
    for_update: bool = False,
) -> Refund | None:
    stmt = select(refunds).where(refunds.c.id == refund_id)
    if game_id is not None:
        stmt = stmt.where(refunds.c.game_id == game_id, refunds.c.mode == mode)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return refund_from_row(row) if row else None


async def refund_by_processor_ref(conn: AsyncConnection, processor: str, processor_ref: str) -> Refund | None:
    row = (
        await conn.execute(
            select(refunds).where(refunds.c.processor == processor, refunds.c.processor_ref == processor_ref)
        )
    ).first()
    return refund_from_row(row) if row else None


async def pending(conn: AsyncConnection, processor: str, limit: int) -> list[Refund]:
    """Refunds of a processor still waiting for their outcome, oldest first."""
    rows = await conn.execute(
        select(refunds)
        .where(refunds.c.processor == processor, refunds.c.status == RefundStatus.PENDING.value)
        .order_by(refunds.c.created_at)
        .limit(limit)
    )
    return [refund_from_row(r) for r in rows]


async def list_refunds(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    payment_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Refund], int]:
    conditions = [
        refunds.c.game_id == game_id,
        refunds.c.mode == mode,
        *created_between(refunds.c.created_at, created_from, created_to),
    ]
    if payment_id is not None:
        conditions.append(refunds.c.payment_id == payment_id)
    rows, total = await page_of(
        conn, refunds, [refunds], conditions, [refunds.c.created_at.desc(), refunds.c.id.desc()], limit, offset
    )
    return [refund_from_row(r) for r in rows], total
