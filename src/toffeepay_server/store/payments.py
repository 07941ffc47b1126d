"""Payment and dispute rows and queries."""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.payments import Dispute, FailureCode, Method, Payment, PaymentStatus
from . import prepared
from .database import insert_unless_present
from .paging import created_between, page_of
from .prepared import Prepared
from .tables import disputes, payment_counts, payments


def payment_from_row(row: Any) -> Payment:
    return Payment(
        id=row.id,
        session_id=row.session_id,
        game_id=row.game_id,
        mode=row.mode,
        user_id=row.user_id,
        status=PaymentStatus(row.status),
        amount=row.amount,
        currency=row.currency,
        method=Method(row.method),
        details=row.details,
        processor=row.processor,
        processor_ref=row.processor_ref,
        failure_code=FailureCode(row.failure_code) if row.failure_code else None,
        failure_message=row.failure_message,
        amount_received=row.amount_received,
        created_at=row.created_at,
        succeeded_at=row.succeeded_at,
        failed_at=row.failed_at,
        amount_refunded=row.amount_refunded,
        refunded_at=row.refunded_at,
    )


def dispute_from_row(row: Any) -> Dispute:
    return Dispute(
        id=row.id,
        game_id=row.game_id,
        mode=row.mode,
        payment_id=row.payment_id,
        session_id=row.session_id,
        user_id=row.user_id,
        reason=row.reason,
        amount=row.amount,
        currency=row.currency,
        processor=row.processor,
        processor_dispute_id=row.processor_dispute_id,
        created_at=row.created_at,
    )


_INSERT_PAYMENT = prepared.insert_of(
    payments,
    [
        "id",
        "session_id",
        "game_id",
        "mode",
        "user_id",
        "status",
        "amount",
        "currency",
        "method",
        "details",
        "processor",
        "processor_ref",
        "created_at",
    ],
)


async def insert_payment(conn: AsyncConnection, p: Payment) -> None:
    await prepared.execute(
        conn,
        _INSERT_PAYMENT,
        {
            "id": p.id,
            "session_id": p.session_id,
            "game_id": p.game_id,
            "mode": p.mode,
            "user_id": p.user_id,
            "status": p.status.value,
            "amount": p.amount,
            "currency": p.currency,
            "method": p.method.value,
            "details": p.details,
            "processor": p.processor,
            "processor_ref": p.processor_ref,
            "created_at": p.created_at,
        },
    )


_SETTLEMENT_COLUMNS = (
    "status",
    "processor_ref",
    "failure_code",
    "failure_message",
    "amount_received",
    "succeeded_at",
    "failed_at",
)
_SAVE_SETTLEMENT = Prepared(
    update(payments)
    .where(payments.c.id == bindparam("id"), payments.c.status == bindparam("before_status"))
    .values({name: bindparam(name) for name in _SETTLEMENT_COLUMNS})
)


async def save_settlement(conn: AsyncConnection, before: Payment, p: Payment) -> bool:
    """Write a settled payment only if its status is still as read (compare-and-set).

    Which moves are allowed is the domain's transition table; this only guards against a concurrent writer.
    """
    changed = await prepared.execute(
        conn,
        _SAVE_SETTLEMENT,
        {
            "id": p.id,
            "before_status": before.status.value,
            "status": p.status.value,
            "processor_ref": p.processor_ref,
            "failure_code": p.failure_code.value if p.failure_code else None,
            "failure_message": p.failure_message,
            "amount_received": p.amount_received,
            "succeeded_at": p.succeeded_at,
            "failed_at": p.failed_at,
        },
    )
    return changed == 1


async def save_refunded(conn: AsyncConnection, before: Payment, after: Payment) -> bool:
    """Write what a payment had refunded only if it is still as read (compare-and-set)."""
    result = await conn.execute(
        update(payments)
        .where(payments.c.id == after.id, payments.c.amount_refunded == before.amount_refunded)
        .values(amount_refunded=after.amount_refunded, refunded_at=after.refunded_at)
    )
    return result.rowcount == 1


async def set_processor_ref(conn: AsyncConnection, payment_id: str, processor_ref: str) -> None:
    """Record the processor's own id of a payment, unless one is already known."""
    await conn.execute(
        update(payments)
        .where(payments.c.id == payment_id, payments.c.processor_ref.is_(None))
        .values(processor_ref=processor_ref)
    )


async def in_flight(conn: AsyncConnection, processor: str, limit: int) -> list[Payment]:
    """Payments of a processor still waiting for their outcome, oldest first."""
    rows = await conn.execute(
        select(payments)
        .where(payments.c.processor == processor, payments.c.status == PaymentStatus.PROCESSING.value)
        .order_by(payments.c.created_at)
        .limit(limit)
    )
    return [payment_from_row(r) for r in rows]


_PaymentRow = namedtuple("_PaymentRow", [c.name for c in payments.c])  # type: ignore[misc]


def _by_id(*, scoped: bool, locked: bool) -> Prepared:
    stmt = select(*payments.c).where(payments.c.id == bindparam("id"))
    if scoped:
        stmt = stmt.where(payments.c.game_id == bindparam("game_id"), payments.c.mode == bindparam("mode"))
    return Prepared(stmt.with_for_update() if locked else stmt)


# Keyed by (in a game's scope, locked for update).
_BY_ID = {
    (scoped, locked): _by_id(scoped=scoped, locked=locked) for scoped in (False, True) for locked in (False, True)
}


async def get_payment(
    conn: prepared.Connection,
    payment_id: str,
    *,
    game_id: str | None = None,
    mode: str | None = None,
    for_update: bool = False,
) -> Payment | None:
    values = {"id": payment_id} if game_id is None else {"id": payment_id, "game_id": game_id, "mode": mode}
    found = await prepared.fetch_one(conn, _BY_ID[(game_id is not None, for_update)], values)
    return None if found is None else payment_from_row(_PaymentRow(*found))


async def payment_by_processor_ref(conn: AsyncConnection, processor: str, processor_ref: str) -> Payment | None:
    row = (
        await conn.execute(
            select(payments).where(payments.c.processor == processor, payments.c.processor_ref == processor_ref)
        )
    ).first()
    return payment_from_row(row) if row else None


async def insert_dispute(conn: AsyncConnection, dialect: str, d: Dispute) -> bool:
    """Insert a dispute unless the processor already reported it; True when inserted."""
    result = await conn.execute(
        insert_unless_present(
            dialect,
            disputes,
            id=d.id,
            game_id=d.game_id,
            mode=d.mode,
            payment_id=d.payment_id,
            session_id=d.session_id,
            user_id=d.user_id,
            reason=d.reason,
            amount=d.amount,
            currency=d.currency,
            processor=d.processor,
            processor_dispute_id=d.processor_dispute_id,
            created_at=d.created_at,
        )
    )
    return result.rowcount == 1


async def dispute_by_processor_id(conn: AsyncConnection, processor: str, processor_dispute_id: str) -> Dispute | None:
    row = (
        await conn.execute(
            select(disputes).where(
                disputes.c.processor == processor, disputes.c.processor_dispute_id == processor_dispute_id
            )
        )
    ).first()
    return dispute_from_row(row) if row else None


async def list_succeeded_payments(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    user_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Payment], int]:
    conditions = [
        payments.c.game_id == game_id,
        payments.c.mode == mode,
        payments.c.status == PaymentStatus.SUCCEEDED.value,
        *created_between(payments.c.created_at, created_from, created_to),
    ]
    if user_id is not None:
        conditions.append(payments.c.user_id == user_id)
    known = None
    if user_id is None and created_from is None and created_to is None:
        known = await _counted(conn, game_id, mode, PaymentStatus.SUCCEEDED)
    order = [payments.c.created_at.desc(), payments.c.id.desc()]
    rows, total = await page_of(conn, payments, [payments], conditions, order, limit, offset, total=known)
    return [payment_from_row(r) for r in rows], total


async def _counted(conn: AsyncConnection, game_id: str, mode: str, status: PaymentStatus) -> int:
    """A game's payments in `status`, from the counts the database keeps (`payment_counts`)."""
    found = await conn.execute(
        select(func.coalesce(func.sum(payment_counts.c.n), 0)).where(
            payment_counts.c.game_id == game_id, payment_counts.c.mode == mode, payment_counts.c.status == status.value
        )
    )
    return int(found.scalar_one())


async def list_disputes(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    payment_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Dispute], int]:
    conditions = [
        disputes.c.game_id == game_id,
        disputes.c.mode == mode,
        *created_between(disputes.c.created_at, created_from, created_to),
    ]
    if payment_id is not None:
        conditions.append(disputes.c.payment_id == payment_id)
    rows, total = await page_of(
        conn, disputes, [disputes], conditions, [disputes.c.created_at.desc(), disputes.c.id.desc()], limit, offset
    )
    return [dispute_from_row(r) for r in rows], total
