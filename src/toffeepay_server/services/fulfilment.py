"""Fulfilment: the game marks a paid session granted; overdue ones are reported once and listed."""

from __future__ import annotations

from ..domain import events, fulfilment
from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.sessions import Session
from ..store import session_lists
from ..store import sessions as store
from .context import ServiceContext
from .sessions import get_session, locked_session, session_event


async def fulfil_session(ctx: ServiceContext, principal: Principal, session_id: str) -> Session:
    """Record that the game granted the purchase; a second call returns the same session."""
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, principal, session_id)
        fulfilled = fulfilment.fulfil(session, ctx.clock())
        if fulfilled is session:
            return session
        if await store.save_fulfilment(uow.conn, fulfilled):
            return fulfilled
    # Fulfilled by a concurrent call in the meantime: that call's fulfilled_at is the one.
    return await get_session(ctx, principal, session_id)


async def report_overdue(ctx: ServiceContext, session_id: str) -> Session | None:
    """Record `session.fulfillment_overdue` for one session, unless it is no longer due (None)."""
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, None, session_id)
        now = ctx.clock()
        if not fulfilment.is_overdue(session, ctx.fulfillment_grace, now):
            return None
        marked = fulfilment.mark_overdue(session, now)
        if not await store.save_transition(uow.conn, session, marked):
            raise DomainError(Reason.SESSION_NOT_PENDING, "session changed concurrently, read it again")
        uow.add_event(session_event(ctx, marked, events.SESSION_FULFILLMENT_OVERDUE, None, now))
        return marked


async def sweep_overdue(ctx: ServiceContext, batch: int = 200) -> int:
    """Report every paid session not fulfilled within the grace period, once; returns how many."""
    async with ctx.db.read() as conn:
        due = await store.overdue_session_ids(conn, fulfilment.overdue_since(ctx.fulfillment_grace, ctx.clock()), batch)
    done = 0
    for session_id in due:
        try:
            if await report_overdue(ctx, session_id) is not None:
                done += 1
        except DomainError:
            continue  # another process reported or changed it first
    return done


async def needs_attention(
    ctx: ServiceContext, game_id: str, mode: str, *, overdue_only: bool = True, limit: int = 50, offset: int = 0
) -> tuple[list[Session], int]:
    """Paid sessions the game has not fulfilled, newest first, with their count.

    `overdue_only`: only those past the grace period (what a dashboard's "Needs attention" shows).
    """
    now = ctx.clock()
    async with ctx.db.read() as conn:
        return await session_lists.list_sessions(
            conn,
            game_id=game_id,
            mode=mode,
            user_id=None,
            status=None,
            created_from=None,
            created_to=None,
            limit=limit,
            offset=offset,
            now=now,
            fulfilled=False,
            paid_before=fulfilment.overdue_since(ctx.fulfillment_grace, now) if overdue_only else None,
        )
