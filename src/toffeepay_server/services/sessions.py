"""Creating, reading, cancelling, listing and expiring sessions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ..domain import events, ids
from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.listing import Page
from ..domain.sessions import NewSession, Session, SessionStatus, seen_status
from ..store import session_lists
from ..store import sessions as store
from ..store.database import UnitOfWork
from .context import ServiceContext
from .processor import Processors


def session_event(
    ctx: ServiceContext, session: Session, type_: str, previous: str | None, at: datetime
) -> events.Event:
    return events.Event(
        id=ctx.new_event_id(),
        type=type_,
        game_id=session.game_id,
        mode=session.mode,
        session_id=session.id,
        sequence=session.event_sequence,
        created_at=at,
        data=events.session_data(session, previous),
        summary=events.session_summary(session),
    )


def check_game(principal: Principal, game_id: str | None) -> None:
    if game_id is not None and game_id != principal.game_id:
        raise DomainError(Reason.INVALID_GAME_ID, f"this API key does not belong to game {game_id!r}")


async def create_session(
    ctx: ServiceContext, principal: Principal, new: NewSession, *, processors: Processors
) -> Session:
    """Record a validated session and its `session.created` event.

    A session no processor of its mode could charge is refused now (`processor_unavailable`,
    or the processor's own `invalid_price`), not when the player tries to pay.
    """
    check_game(principal, new.game_id)
    processors.for_mode(principal.mode.value).check_price(new.item.price, new.item.currency)
    now = ctx.clock()
    session = Session(
        id=ctx.new_id(ids.SESSION),
        game_id=principal.game_id,
        mode=principal.mode.value,
        user_id=new.user_id,
        item=new.item,
        status=SessionStatus.PENDING,
        return_url=new.return_url,
        metadata=new.metadata,
        expires_at=new.expires_at,
        created_at=now,
        event_sequence=1,
        image=new.image,
    )
    await store.insert_session(ctx.db, session, session_event(ctx, session, events.SESSION_CREATED, None, now))
    return session


async def get_session(ctx: ServiceContext, principal: Principal, session_id: str) -> Session:
    async with ctx.db.point_read() as conn:
        session = await store.get_session(conn, session_id, game_id=principal.game_id, mode=principal.mode.value)
    if session is None:
        raise DomainError(Reason.NOT_FOUND, f"no session {session_id!r}")
    return session.as_seen(ctx.clock())


async def get_status(ctx: ServiceContext, principal: Principal, session_id: str) -> SessionStatus:
    """A session's status as its game sees it (what games poll when the player comes back)."""
    async with ctx.db.point_read() as conn:
        found = await store.status_of(conn, session_id, game_id=principal.game_id, mode=principal.mode.value)
    if found is None:
        raise DomainError(Reason.NOT_FOUND, f"no session {session_id!r}")
    return seen_status(*found, ctx.clock())


async def locked_session(uow: UnitOfWork, principal: Principal | None, session_id: str) -> Session:
    """The session, locked for this transaction (FOR UPDATE); `principal` None: any game (processors)."""
    session = await store.get_session(
        uow.conn,
        session_id,
        game_id=principal.game_id if principal else None,
        mode=principal.mode.value if principal else None,
        for_update=True,
    )
    if session is None:
        raise DomainError(Reason.NOT_FOUND, f"no session {session_id!r}")
    return session


async def transition(
    ctx: ServiceContext,
    uow: UnitOfWork,
    session: Session,
    target: SessionStatus,
    event_type: str,
    at: datetime,
    **changes: object,
) -> Session:
    """Move a locked session to `target` and record its event, in the caller's transaction."""
    after = replace(session.transition(target, at), **changes)  # type: ignore[arg-type]
    if not await store.save_transition(uow.conn, session, after):
        # Another writer moved it between our read and write.
        raise DomainError(Reason.SESSION_NOT_PENDING, "session changed concurrently, read it again")
    uow.add_event(session_event(ctx, after, event_type, session.status.value, at))
    return after


async def cancel_session(ctx: ServiceContext, principal: Principal | None, session_id: str) -> Session:
    """Cancel a pending session with no payment under way (by its game, or by the player on the page)."""
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, principal, session_id)
        now = ctx.clock()
        session.check_cancellable(now)
        return await transition(ctx, uow, session, SessionStatus.CANCELLED, events.SESSION_CANCELLED, now)


async def list_sessions(
    ctx: ServiceContext,
    principal: Principal,
    *,
    game_id: str | None,
    user_id: str | None,
    status: str | None,
    page: Page,
    fulfilled: bool | None = None,
    count_limit: int | None = None,
) -> tuple[list[Session], int]:
    """`count_limit`: stop counting matches there (see store.paging.page_of)."""
    check_game(principal, game_id)
    parsed_status = None
    if status is not None:
        try:
            parsed_status = SessionStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in SessionStatus)
            raise DomainError(Reason.INVALID_STATUS, f"status must be one of {allowed}") from None
    now = ctx.clock()
    async with ctx.db.read() as conn:
        found, total = await session_lists.list_sessions(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            user_id=user_id,
            status=parsed_status,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
            now=now,
            fulfilled=fulfilled,
            count_limit=count_limit,
        )
    return [s.as_seen(now) for s in found], total


async def expire_session(
    ctx: ServiceContext, session_id: str, principal: Principal | None = None, *, force: bool = False
) -> Session | None:
    """Record the expiry of a lapsed session (or, with `force`, of any pending one).

    Returns None when there is nothing to expire (already final, or paid in the meantime).
    """
    async with ctx.db.transaction() as uow:
        session = await locked_session(uow, principal, session_id)
        now = ctx.clock()
        if force and session.can_move_to(SessionStatus.EXPIRED) and session.payment_id is None:
            session_to_expire = replace(session, expires_at=min(session.expires_at, now))
        elif session.is_lapsed(now):
            session_to_expire = session
        else:
            return None
        return await transition(
            ctx,
            uow,
            session_to_expire,
            SessionStatus.EXPIRED,
            events.SESSION_EXPIRED,
            now,
            expired_at=session_to_expire.expires_at,
        )


async def expire_now(ctx: ServiceContext, principal: Principal, session_id: str) -> Session:
    """Expire a pending session at once (the sandbox's ExpireSession), as if its time ran out.

    An already expired session is answered as it is; any other state refuses as cancelling would.
    """
    expired = await expire_session(ctx, session_id, principal, force=True)
    if expired is None:
        expired = await get_session(ctx, principal, session_id)
        if expired.status is not SessionStatus.EXPIRED:
            expired.check_cancellable(ctx.clock())
    return expired


async def sweep_expired(ctx: ServiceContext, batch: int = 200) -> int:
    """Record every lapsed session's expiry and its event; returns how many."""
    async with ctx.db.read() as conn:
        due = await store.lapsed_session_ids(conn, ctx.clock(), batch)
    done = 0
    for session_id in due:
        if await expire_session(ctx, session_id) is not None:
            done += 1
    return done
