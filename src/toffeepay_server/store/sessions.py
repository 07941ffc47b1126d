"""Session rows and queries."""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.events import Event
from ..domain.sessions import Item, Session, SessionStatus
from . import prepared
from .database import Database, RowWithEvent
from .prepared import Prepared
from .tables import sessions

# Every column but the image, which only the payment page reads.
SESSION_COLUMNS = [c for c in sessions.c if c.name != "image"]


def session_from_row(row: Any, image: str | None = None) -> Session:
    return Session(
        id=row.id,
        game_id=row.game_id,
        mode=row.mode,
        user_id=row.user_id,
        item=Item(title=row.title, price=row.price, currency=row.currency),
        status=SessionStatus(row.status),
        return_url=row.return_url,
        metadata=row.metadata,
        expires_at=row.expires_at,
        created_at=row.created_at,
        payment_id=row.payment_id,
        paid_at=row.paid_at,
        failed_at=row.failed_at,
        cancelled_at=row.cancelled_at,
        expired_at=row.expired_at,
        fulfilled_at=row.fulfilled_at,
        fulfillment_overdue_at=row.fulfillment_overdue_at,
        event_sequence=row.event_sequence,
        image=image,
    )


_NEW_SESSION = RowWithEvent(
    sessions,
    [
        "id",
        "game_id",
        "mode",
        "user_id",
        "status",
        "title",
        "price",
        "currency",
        "image",
        "return_url",
        "metadata",
        "payment_id",
        "event_sequence",
        "expires_at",
        "created_at",
    ],
)
_Row = namedtuple("_Row", [c.name for c in SESSION_COLUMNS])  # type: ignore[misc]
_BY_ID_IN_SCOPE = Prepared(
    select(*SESSION_COLUMNS).where(
        sessions.c.id == bindparam("id"),
        sessions.c.game_id == bindparam("game_id"),
        sessions.c.mode == bindparam("mode"),
    )
)

_STATUS_IN_SCOPE = Prepared(
    select(sessions.c.status, sessions.c.payment_id, sessions.c.expires_at).where(
        sessions.c.id == bindparam("id"),
        sessions.c.game_id == bindparam("game_id"),
        sessions.c.mode == bindparam("mode"),
    )
)

_BY_ID = Prepared(select(*SESSION_COLUMNS).where(sessions.c.id == bindparam("id")))
_LOCKED_BY_ID = Prepared(select(*SESSION_COLUMNS).where(sessions.c.id == bindparam("id")).with_for_update())
_LOCKED_BY_ID_IN_SCOPE = Prepared(
    select(*SESSION_COLUMNS)
    .where(
        sessions.c.id == bindparam("id"),
        sessions.c.game_id == bindparam("game_id"),
        sessions.c.mode == bindparam("mode"),
    )
    .with_for_update()
)


async def status_of(
    conn: prepared.Connection, session_id: str, *, game_id: str, mode: str
) -> tuple[SessionStatus, str | None, datetime] | None:
    """A session's stored status, payment id and expiry (what its status as seen depends on)."""
    found = await prepared.fetch_one(conn, _STATUS_IN_SCOPE, {"id": session_id, "game_id": game_id, "mode": mode})
    return None if found is None else (SessionStatus(found[0]), found[1], found[2])


async def insert_session(db: Database, s: Session, created: Event) -> None:
    """Insert a new session with its `session.created` event: both commit, or neither."""
    values = {
        "id": s.id,
        "game_id": s.game_id,
        "mode": s.mode,
        "user_id": s.user_id,
        "status": s.status.value,
        "title": s.item.title,
        "price": s.item.price,
        "currency": s.item.currency,
        "image": s.image,
        "return_url": s.return_url,
        "metadata": s.metadata,
        "payment_id": s.payment_id,
        "event_sequence": s.event_sequence,
        "expires_at": s.expires_at,
        "created_at": s.created_at,
    }
    await db.insert_with_event(_NEW_SESSION, values, created)


async def get_session(
    conn: prepared.Connection,
    session_id: str,
    *,
    game_id: str | None = None,
    mode: str | None = None,
    for_update: bool = False,
    with_image: bool = False,
) -> Session | None:
    if not with_image:
        if game_id is None:
            statement = _LOCKED_BY_ID if for_update else _BY_ID
            found = await prepared.fetch_one(conn, statement, {"id": session_id})
        else:
            statement = _LOCKED_BY_ID_IN_SCOPE if for_update else _BY_ID_IN_SCOPE
            found = await prepared.fetch_one(conn, statement, {"id": session_id, "game_id": game_id, "mode": mode})
        return None if found is None else session_from_row(_Row(*found))
    assert isinstance(conn, AsyncConnection)
    stmt = select(*sessions.c).where(sessions.c.id == session_id)
    if game_id is not None:
        stmt = stmt.where(sessions.c.game_id == game_id, sessions.c.mode == mode)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return None if row is None else session_from_row(row, row.image)


async def save_transition(conn: AsyncConnection, before: Session, after: Session) -> bool:
    """Write a transition only if the row is still as it was read (compare-and-set)."""
    changed = await prepared.execute(
        conn,
        _SAVE_TRANSITION,
        {
            "id": after.id,
            "before_status": before.status.value,
            "before_sequence": before.event_sequence,
            "status": after.status.value,
            "payment_id": after.payment_id,
            "event_sequence": after.event_sequence,
            "expires_at": after.expires_at,
            "paid_at": after.paid_at,
            "failed_at": after.failed_at,
            "cancelled_at": after.cancelled_at,
            "expired_at": after.expired_at,
            "fulfillment_overdue_at": after.fulfillment_overdue_at,
        },
    )
    return changed == 1


_TRANSITION_COLUMNS = (
    "status",
    "payment_id",
    "event_sequence",
    "expires_at",
    "paid_at",
    "failed_at",
    "cancelled_at",
    "expired_at",
    "fulfillment_overdue_at",
)
_SAVE_TRANSITION = Prepared(
    update(sessions)
    .where(
        sessions.c.id == bindparam("id"),
        sessions.c.status == bindparam("before_status"),
        sessions.c.event_sequence == bindparam("before_sequence"),
    )
    .values({name: bindparam(name) for name in _TRANSITION_COLUMNS})
)


async def save_fulfilment(conn: AsyncConnection, after: Session) -> bool:
    """Set fulfilled_at once: only a paid session not fulfilled yet takes it."""
    result = await conn.execute(
        update(sessions)
        .where(
            sessions.c.id == after.id,
            sessions.c.status == SessionStatus.PAID.value,
            sessions.c.fulfilled_at.is_(None),
        )
        .values(fulfilled_at=after.fulfilled_at)
    )
    return result.rowcount == 1


async def lapsed_session_ids(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    rows = await conn.execute(
        select(sessions.c.id)
        .where(
            sessions.c.status == SessionStatus.PENDING.value,
            sessions.c.expires_at <= now,
            sessions.c.payment_id.is_(None),
        )
        .order_by(sessions.c.expires_at)
        .limit(limit)
    )
    return [r.id for r in rows]


async def overdue_session_ids(conn: AsyncConnection, paid_before: datetime, limit: int) -> list[str]:
    """Paid sessions not fulfilled, paid at or before `paid_before`, not yet reported overdue."""
    rows = await conn.execute(
        select(sessions.c.id)
        .where(
            sessions.c.status == SessionStatus.PAID.value,
            sessions.c.fulfilled_at.is_(None),
            sessions.c.fulfillment_overdue_at.is_(None),
            sessions.c.paid_at <= paid_before,
        )
        .order_by(sessions.c.paid_at)
        .limit(limit)
    )
    return [r.id for r in rows]
