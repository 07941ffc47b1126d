"""Payments: starting one for a session, settling it, and reading payments and disputes.

A payment is created `processing` when the player submits and settled once, by its
processor's answer (at once, or later through the processor's notification). Settling
moves the session to `paid` or `failed` in the same transaction.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ..domain import events, ids
from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.listing import Page
from ..domain.payments import Dispute, Method, Outcome, Payment, PaymentStatus
from ..domain.sessions import Session, SessionStatus
from ..store import payments as store
from ..store import sessions as session_store
from .context import ServiceContext
from .sessions import locked_session, session_event


def payment_event(
    ctx: ServiceContext, payment: Payment, session: Session, type_: str, previous: str | None, at: datetime
) -> events.Event:
    """A `payment.*` event; `session` carries the sequence number this event takes."""
    return events.Event(
        id=ctx.new_event_id(),
        type=type_,
        game_id=payment.game_id,
        mode=payment.mode,
        session_id=session.id,
        sequence=session.event_sequence,
        created_at=at,
        data=events.payment_data(payment, session, previous),
        summary=events.session_summary(session),
    )


async def start_payment(
    ctx: ServiceContext, session_id: str, *, method: Method, processor: str, principal: Principal | None = None
) -> Payment:
    """Create the session's one payment, `processing`, and announce it (`payment.created`).

    The session stays `pending` but takes no other payment and can no longer be cancelled or
    expire. Two concurrent calls for one session: the first wins, the other is refused with
    `payment_in_progress` (or `session_not_pending` once settled).
    """
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, principal, session_id)
        now = ctx.clock()
        payment_id = ctx.new_id(ids.PAYMENT)
        after = session.start_payment(payment_id, now)
        payment = Payment(
            id=payment_id,
            session_id=session.id,
            game_id=session.game_id,
            mode=session.mode,
            user_id=session.user_id,
            status=PaymentStatus.PROCESSING,
            amount=session.item.price,
            currency=session.item.currency,
            method=method,
            details=session.item.title,
            processor=processor,
            created_at=now,
        )
        if not await session_store.save_transition(uow.conn, session, after):
            raise DomainError(Reason.PAYMENT_IN_PROGRESS, "session changed concurrently, read it again")
        await store.insert_payment(uow.conn, payment)
        uow.add_event(payment_event(ctx, payment, after, events.PAYMENT_CREATED, None, now))
    return payment


async def settle_payment(
    ctx: ServiceContext, payment_id: str, outcome: Outcome, *, processor_ref: str | None = None
) -> Payment:
    """Apply a processor's outcome: payment and session move together, with their events.

    A payment is settled once; a repeated or late notification returns it unchanged.
    """
    async with ctx.db.point_read() as conn:
        found = await store.get_payment(conn, payment_id)
    if found is None:
        raise DomainError(Reason.NOT_FOUND, f"no payment {payment_id!r}")
    async with ctx.db.transaction() as uow:
        # Lock order everywhere: the session first, then its payment.
        session = await locked_session(uow, None, found.session_id)
        payment = await store.get_payment(uow.conn, payment_id, for_update=True)
        assert payment is not None  # payments are never deleted
        if payment.is_final:
            return payment
        now = ctx.clock()
        settled = payment.settle(outcome, now)
        if processor_ref and not settled.processor_ref:
            settled = replace(settled, processor_ref=processor_ref)
        counted = session.counted()
        target = SessionStatus.PAID if outcome.succeeded else SessionStatus.FAILED
        after = counted.transition(target, now)
        await store.save_settlement(uow.conn, payment, settled)
        if not await session_store.save_transition(uow.conn, session, after):
            raise DomainError(Reason.SESSION_NOT_PENDING, "session changed concurrently, read it again")
        payment_type = events.PAYMENT_SUCCEEDED if outcome.succeeded else events.PAYMENT_FAILED
        session_type = events.SESSION_PAID if outcome.succeeded else events.SESSION_FAILED
        uow.add_event(payment_event(ctx, settled, counted, payment_type, payment.status.value, now))
        uow.add_event(session_event(ctx, after, session_type, session.status.value, now))
    return settled


async def record_processor_ref(ctx: ServiceContext, payment_id: str, processor_ref: str) -> None:
    async with ctx.db.transaction() as uow:
        await store.set_processor_ref(uow.conn, payment_id, processor_ref)


async def find_processor_payment(
    ctx: ServiceContext, processor: str, *, processor_ref: str | None, payment_id: str | None = None
) -> Payment | None:
    """The payment a processor's notification is about: by the processor's own id, else by ours."""
    async with ctx.db.read() as conn:
        if processor_ref and (found := await store.payment_by_processor_ref(conn, processor, processor_ref)):
            return found
        found = await store.get_payment(conn, payment_id) if payment_id else None
    if found is None or found.processor != processor:
        return None
    # Ours, unless the processor already gave it another id.
    return found if not (processor_ref and found.processor_ref not in (None, processor_ref)) else None


async def in_flight(ctx: ServiceContext, processor: str, limit: int = 200) -> list[Payment]:
    """A processor's payments still waiting for an outcome, oldest first."""
    async with ctx.db.read() as conn:
        return await store.in_flight(conn, processor, limit)


async def get_payment(ctx: ServiceContext, principal: Principal, payment_id: str) -> Payment:
    async with ctx.db.read() as conn:
        payment = await store.get_payment(conn, payment_id, game_id=principal.game_id, mode=principal.mode.value)
    if payment is None:
        raise DomainError(Reason.NOT_FOUND, f"no payment {payment_id!r}")
    return payment


async def list_payments(
    ctx: ServiceContext, principal: Principal, *, user_id: str | None, page: Page
) -> tuple[list[Payment], int]:
    async with ctx.db.read() as conn:
        return await store.list_succeeded_payments(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            user_id=user_id,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
        )


async def list_disputes(
    ctx: ServiceContext, principal: Principal, *, payment_id: str | None, page: Page
) -> tuple[list[Dispute], int]:
    async with ctx.db.read() as conn:
        return await store.list_disputes(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            payment_id=payment_id,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
        )
