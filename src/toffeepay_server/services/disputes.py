"""Disputes reported by processors: stored once, matched to their payment, announced."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import events, ids
from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.payments import Dispute, dispute_reason, disputed_amount, hint_applies
from ..store import payments as store
from ..store import sessions as session_store
from .context import ServiceContext
from .sessions import locked_session


@dataclass(frozen=True, slots=True)
class Hints:
    """Who a dispute matching no payment concerns, as the processor's metadata says."""

    game_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None


async def dispute_payment(
    ctx: ServiceContext,
    principal: Principal,
    payment_id: str,
    *,
    reason: str,
    amount: int | None,
    processor: str,
    processor_dispute_id: str,
) -> Dispute:
    """A dispute a caller opens on one of its own payments (the sandbox's CreateDispute).

    The payment must have succeeded; `amount` defaults to all of it and `reason` to `fraudulent`.
    """
    async with ctx.db.read() as conn:
        payment = await store.get_payment(conn, payment_id, game_id=principal.game_id, mode=principal.mode.value)
    if payment is None:
        raise DomainError(Reason.NOT_FOUND, f"no payment {payment_id!r}")
    return await record_dispute(
        ctx,
        processor=processor,
        processor_dispute_id=processor_dispute_id,
        mode=payment.mode,
        payment_id=payment.id,
        reason=dispute_reason(reason),
        amount=disputed_amount(payment, amount),
        currency=payment.currency,
    )


async def record_dispute(
    ctx: ServiceContext,
    *,
    processor: str,
    processor_dispute_id: str,
    mode: str,
    payment_id: str | None,
    reason: str,
    amount: int,
    currency: str,
    hints: Hints = Hints(),
) -> Dispute:
    """Store a processor's dispute once and emit `dispute.created` to the game it concerns.

    A repeated notification (same processor and dispute id) returns the stored dispute and
    emits nothing. A dispute matching no payment takes its game, session and player from
    `hints` (from the session itself when it exists in this mode); with no game it is kept
    and nobody is told.
    """
    async with ctx.db.read() as conn:
        payment = await store.get_payment(conn, payment_id) if payment_id else None
        hinted = None
        if payment is None and hints.session_id:
            hinted = await session_store.get_session(conn, hints.session_id)
            if hinted is not None and not hint_applies(
                session_mode=hinted.mode, session_game_id=hinted.game_id, mode=mode, game_id=hints.game_id
            ):
                hinted = None
    session_id = payment.session_id if payment else hinted.id if hinted else None
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, None, session_id) if session_id else None
        now = ctx.clock()
        game_id: str | None
        user_id: str | None
        if session is not None:
            game_id, user_id = session.game_id, session.user_id
        else:
            game_id, session_id, user_id = hints.game_id, hints.session_id, hints.user_id
        dispute = Dispute(
            id=ctx.new_id(ids.DISPUTE),
            mode=payment.mode if payment else mode,
            reason=reason,
            amount=amount,
            currency=currency,
            processor=processor,
            processor_dispute_id=processor_dispute_id,
            created_at=now,
            game_id=game_id,
            payment_id=payment.id if payment else None,
            session_id=session_id,
            user_id=user_id,
        )
        if not await store.insert_dispute(uow.conn, ctx.db.dialect, dispute):
            existing = await store.dispute_by_processor_id(uow.conn, processor, processor_dispute_id)
            assert existing is not None  # disputes are never deleted
            return existing
        if game_id is None:
            return dispute
        sequence, counted = None, None
        if session is not None:
            counted = session.counted()
            if not await session_store.save_transition(uow.conn, session, counted):
                raise DomainError(Reason.SESSION_NOT_PENDING, "session changed concurrently, read it again")
            sequence = counted.event_sequence
        uow.add_event(
            events.Event(
                id=ctx.new_event_id(),
                type=events.DISPUTE_CREATED,
                game_id=game_id,
                mode=dispute.mode,
                session_id=session.id if session else None,
                sequence=sequence,
                created_at=now,
                data=events.dispute_data(dispute, sequence, session.fulfilled_at if session else None),
                summary=events.session_summary(counted) if counted is not None else None,
            )
        )
    return dispute
