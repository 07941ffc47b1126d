"""Listing sessions: one page newest first and the exact number of matches, at any table size.

Status is as readers see it: a pending session past its expiry with no payment under way
(lapsed) reads and filters as expired until the sweeper records it. The stored status of
every session is counted per game by the database (`session_counts`, kept by triggers), so
the total of an unfiltered or status-only list costs a few rows plus the game's lapsed
sessions not swept yet (few: the sweeper records them within seconds). Other filters count
the rows of an index that covers them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from ..domain.sessions import Session, SessionStatus
from .paging import created_between
from .sessions import SESSION_COLUMNS, session_from_row
from .tables import session_counts, sessions

_ORDER = [sessions.c.created_at.desc(), sessions.c.id.desc()]


def _status(by_user: bool) -> ColumnElement[str]:
    """The status column as filters compare it.

    Filtering one user's sessions, the comparison is made on an expression no index is keyed
    on: SQLite, with no statistics, would otherwise as soon walk every session of the game in
    that status, newest first, looking for the user's, as read the user's own (the user index
    holds the status too, so the comparison still reads no table row).
    """
    return sessions.c.status.concat("") if by_user else sessions.c.status


def _lapsed(now: datetime, by_user: bool = False) -> ColumnElement[bool]:
    return and_(
        _status(by_user) == SessionStatus.PENDING.value,
        sessions.c.payment_id.is_(None),
        sessions.c.expires_at <= now,
    )


def status_filter(status: SessionStatus, now: datetime, by_user: bool = False) -> ColumnElement[bool]:
    """Filter by status as readers see it: lapsed pending sessions count as expired."""
    column = _status(by_user)
    if status is SessionStatus.EXPIRED:
        return or_(column == SessionStatus.EXPIRED.value, _lapsed(now, by_user))
    if status is SessionStatus.PENDING:
        return and_(column == SessionStatus.PENDING.value, ~_lapsed(now, by_user))
    return column == status.value


async def _count(conn: AsyncConnection, conditions: list[ColumnElement[bool]]) -> int:
    return int((await conn.execute(select(func.count()).select_from(sessions).where(*conditions))).scalar_one())


async def _lapsed_count(
    conn: AsyncConnection, conditions: list[ColumnElement[bool]], now: datetime, by_user: bool = False
) -> int:
    """Lapsed sessions among `conditions` (few: the sweeper records them within seconds)."""
    return await _count(conn, [*conditions, _lapsed(now, by_user)])


async def _counted(conn: AsyncConnection, game_id: str, mode: str, status: SessionStatus | None, now: datetime) -> int:
    """The sessions of a game in `status` (all: None), from the maintained counts."""
    rows = await conn.execute(
        select(session_counts.c.status, func.sum(session_counts.c.n))
        .where(session_counts.c.game_id == game_id, session_counts.c.mode == mode)
        .group_by(session_counts.c.status)
    )
    counts = {r[0]: int(r[1]) for r in rows}
    if status is None:
        return sum(counts.values())
    stored = counts.get(status.value, 0)
    if status in (SessionStatus.PENDING, SessionStatus.EXPIRED):
        lapsed = await _lapsed_count(conn, [sessions.c.game_id == game_id, sessions.c.mode == mode], now)
        return stored - lapsed if status is SessionStatus.PENDING else stored + lapsed
    return stored


async def _matching(
    conn: AsyncConnection,
    conditions: list[ColumnElement[bool]],
    status: SessionStatus | None,
    now: datetime,
    count_limit: int | None,
    by_user: bool,
) -> int:
    """The rows matching `conditions` and `status`, counted on the index that covers them."""
    if count_limit is not None:
        where = conditions if status is None else [*conditions, status_filter(status, now, by_user)]
        bounded = select(literal(1)).select_from(sessions).where(*where).limit(count_limit).subquery()
        return int((await conn.execute(select(func.count()).select_from(bounded))).scalar_one())
    if status is None:
        return await _count(conn, conditions)
    stored = await _count(conn, [*conditions, _status(by_user) == status.value])
    if status is SessionStatus.PENDING:
        return stored - await _lapsed_count(conn, conditions, now, by_user)
    if status is SessionStatus.EXPIRED:
        return stored + await _lapsed_count(conn, conditions, now, by_user)
    return stored


async def _rows(
    conn: AsyncConnection,
    conditions: list[ColumnElement[bool]],
    status: SessionStatus | None,
    now: datetime,
    limit: int,
    offset: int,
    by_user: bool,
) -> list[Any]:
    def page(where: list[ColumnElement[bool]], count: int, skip: int = 0) -> Any:
        return select(*SESSION_COLUMNS).where(*where).order_by(*_ORDER).limit(count).offset(skip)

    if status is not SessionStatus.EXPIRED:
        where = conditions if status is None else [*conditions, status_filter(status, now, by_user)]
        return list(await conn.execute(page(where, limit, offset)))
    # Expired: those recorded, and the lapsed ones not recorded yet. Each in the order of its own
    # index, merged here: an OR of the two would sort every expired session of the game.
    wanted = offset + limit
    recorded = list(await conn.execute(page([*conditions, _status(by_user) == SessionStatus.EXPIRED.value], wanted)))
    lapsed = list(await conn.execute(page([*conditions, _lapsed(now, by_user)], wanted)))
    merged = sorted(recorded + lapsed, key=lambda r: (r.created_at, r.id), reverse=True)
    return merged[offset:wanted]


async def list_sessions(
    conn: AsyncConnection,
    *,
    game_id: str,
    mode: str,
    user_id: str | None,
    status: SessionStatus | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
    now: datetime,
    fulfilled: bool | None = None,
    paid_before: datetime | None = None,
    count_limit: int | None = None,
) -> tuple[list[Session], int]:
    """One page newest first and the number of all matches (at most `count_limit`, when given).

    `fulfilled` True: fulfilled sessions; False: paid ones not fulfilled (`paid_before`: paid by then).
    """
    narrowing: list[ColumnElement[bool]] = []
    if user_id is not None:
        narrowing.append(sessions.c.user_id == user_id)
    if fulfilled is True:
        narrowing.append(sessions.c.fulfilled_at.is_not(None))
    elif fulfilled is False:
        narrowing += [sessions.c.status == SessionStatus.PAID.value, sessions.c.fulfilled_at.is_(None)]
    if paid_before is not None:
        narrowing.append(sessions.c.paid_at <= paid_before)
    narrowing += created_between(sessions.c.created_at, created_from, created_to)
    conditions = [sessions.c.game_id == game_id, sessions.c.mode == mode, *narrowing]
    if narrowing:
        total = await _matching(conn, conditions, status, now, count_limit, user_id is not None)
    else:
        total = await _counted(conn, game_id, mode, status, now)
    if count_limit is not None:
        total = min(total, count_limit)
    if offset >= total:
        return [], total
    rows = await _rows(conn, conditions, status, now, limit, offset, user_id is not None)
    return [session_from_row(r) for r in rows], total
