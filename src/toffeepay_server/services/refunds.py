"""Refunds: giving back all or part of a succeeded payment, settling the refund, reading refunds.

A refund is created `pending`, with `refund.created`, in the transaction that checks what is
left to refund; its processor settles it once (`refund.succeeded` or `refund.failed`), at once
or later through the processor's notification. Lock order is the payment path's: the session,
then its payment, then the refund. Every refund of a payment is written under its session's
lock, so pending and succeeded refunds never add up to more than was paid, however many are
asked for at once and on however many processes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ..domain import events, ids
from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.listing import Page
from ..domain.payments import Payment
from ..domain.refunds import Refund, RefundOutcome, RefundReason, RefundStatus, after_refund, refund_amount
from ..domain.sessions import Session
from ..store import payments as payment_store
from ..store import refunds as store
from ..store import sessions as session_store
from ..store.database import UnitOfWork
from .context import ServiceContext
from .sessions import locked_session


def refund_event(
    ctx: ServiceContext,
    refund: Refund,
    payment: Payment,
    session: Session,
    type_: str,
    previous: str | None,
    at: datetime,
) -> events.Event:
    """A `refund.*` event; `session` carries the sequence number this event takes."""
    return events.Event(
        id=ctx.new_event_id(),
        type=type_,
        game_id=refund.game_id,
        mode=refund.mode,
        session_id=session.id,
        sequence=session.event_sequence,
        created_at=at,
        data=events.refund_data(refund, payment, session, previous),
        summary=events.session_summary(session),
    )


async def _count_event(uow: UnitOfWork, session: Session) -> Session:
    """The session after one more event about it, written only if nobody changed it meanwhile."""
    counted = session.counted()
    if not await session_store.save_transition(uow.conn, session, counted):
        # Never under the session lock; a refusal rather than a lost event should it ever happen.
        raise DomainError(Reason.INTERNAL, "session changed under its lock")
    return counted


async def payment_to_refund(ctx: ServiceContext, principal: Principal, payment_id: str) -> Payment:
    """The caller's payment a refund is asked for (`not_found` for another game's or mode's)."""
    if not payment_id:
        raise DomainError(Reason.INVALID_ARGUMENT, "payment_id is required")
    ids.requested_id(payment_id, "payment_id")
    async with ctx.db.read() as conn:
        payment = await payment_store.get_payment(
            conn, payment_id, game_id=principal.game_id, mode=principal.mode.value
        )
    if payment is None:
        raise DomainError(Reason.NOT_FOUND, f"no payment {payment_id!r}")
    return payment


async def start_refund(
    ctx: ServiceContext, payment: Payment, *, amount: int | None, reason: RefundReason, processor: str
) -> Refund:
    """Create a `pending` refund of `payment` (by default all that is left) and announce it.

    Refused with `payment_not_refundable` unless the payment succeeded, and with
    `invalid_refund_amount` unless the amount is 1..what pending and succeeded refunds left.
    """
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, None, payment.session_id)
        current = await payment_store.get_payment(uow.conn, payment.id, for_update=True)
        assert current is not None  # payments are never deleted
        taken = await store.taken(uow.conn, current.id)
        now = ctx.clock()
        refund = Refund(
            id=ctx.new_id(ids.REFUND),
            payment_id=current.id,
            session_id=current.session_id,
            game_id=current.game_id,
            mode=current.mode,
            user_id=current.user_id,
            amount=refund_amount(current, taken, amount),
            currency=current.currency,
            reason=reason,
            status=RefundStatus.PENDING,
            processor=processor,
            created_at=now,
        )
        await store.insert_refund(uow.conn, refund)
        counted = await _count_event(uow, session)
        uow.add_event(refund_event(ctx, refund, current, counted, events.REFUND_CREATED, None, now))
    return refund


async def settle_refund(
    ctx: ServiceContext, refund_id: str, outcome: RefundOutcome, *, processor_ref: str | None = None
) -> Refund:
    """Apply a processor's outcome to a refund, with its event; a succeeded one adds to the
    payment's `amount_refunded` (and sets `refunded_at` once all of it is back).

    A refund is settled once; a repeated or late notification returns it unchanged.
    """
    async with ctx.db.read() as conn:
        found = await store.get_refund(conn, refund_id)
    if found is None:
        raise DomainError(Reason.NOT_FOUND, f"no refund {refund_id!r}")
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, None, found.session_id)
        payment = await payment_store.get_payment(uow.conn, found.payment_id, for_update=True)
        refund = await store.get_refund(uow.conn, refund_id, for_update=True)
        assert payment is not None and refund is not None  # never deleted
        if refund.is_final:
            return refund
        now = ctx.clock()
        settled = refund.settle(outcome, now)
        if processor_ref and not settled.processor_ref:
            settled = replace(settled, processor_ref=processor_ref)
        await store.save_settlement(uow.conn, refund, settled)
        if outcome.succeeded:
            refunded = after_refund(payment, settled)
            if not await payment_store.save_refunded(uow.conn, payment, refunded):
                raise DomainError(Reason.INTERNAL, "payment changed under its lock")
            payment = refunded
        counted = await _count_event(uow, session)
        type_ = events.REFUND_SUCCEEDED if outcome.succeeded else events.REFUND_FAILED
        uow.add_event(refund_event(ctx, settled, payment, counted, type_, refund.status.value, now))
    return settled


async def record_processor_ref(ctx: ServiceContext, refund_id: str, processor_ref: str) -> None:
    async with ctx.db.transaction() as uow:
        await store.set_processor_ref(uow.conn, refund_id, processor_ref)


async def find_processor_refund(
    ctx: ServiceContext, processor: str, *, processor_ref: str | None, refund_id: str | None = None
) -> Refund | None:
    """The refund a processor's notification is about: by the processor's own id, else by ours."""
    async with ctx.db.read() as conn:
        if processor_ref and (found := await store.refund_by_processor_ref(conn, processor, processor_ref)):
            return found
        found = await store.get_refund(conn, refund_id) if refund_id else None
    if found is None or found.processor != processor:
        return None
    return found if not (processor_ref and found.processor_ref not in (None, processor_ref)) else None


async def pending_refunds(ctx: ServiceContext, processor: str, limit: int = 200) -> list[Refund]:
    """A processor's refunds still waiting for an outcome, oldest first."""
    async with ctx.db.read() as conn:
        return await store.pending(conn, processor, limit)


async def get_refund(ctx: ServiceContext, principal: Principal, refund_id: str) -> Refund:
    if not refund_id:
        raise DomainError(Reason.INVALID_ARGUMENT, "id is required")
    ids.requested_id(refund_id, "id")
    async with ctx.db.read() as conn:
        refund = await store.get_refund(conn, refund_id, game_id=principal.game_id, mode=principal.mode.value)
    if refund is None:
        raise DomainError(Reason.NOT_FOUND, f"no refund {refund_id!r}")
    return refund


async def list_refunds(
    ctx: ServiceContext, principal: Principal, *, payment_id: str | None, page: Page
) -> tuple[list[Refund], int]:
    if payment_id is not None:
        ids.requested_id(payment_id, "payment_id")
    async with ctx.db.read() as conn:
        return await store.list_refunds(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            payment_id=payment_id,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
        )
