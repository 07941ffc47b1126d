"""Dashboard accounts, their memberships in games, and their signed-in sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.accounts import Role
from .tables import dashboard_sessions, memberships, users


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    password_hash: str
    operator: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime


def _user(row: Any) -> UserRecord:
    return UserRecord(row.id, row.email, row.password_hash, bool(row.operator), row.created_at)


async def insert_user(conn: AsyncConnection, user: UserRecord) -> None:
    await conn.execute(
        insert(users).values(
            id=user.id,
            email=user.email,
            password_hash=user.password_hash,
            operator=user.operator,
            created_at=user.created_at,
        )
    )


async def user_by_email(conn: AsyncConnection, email: str) -> UserRecord | None:
    row = (await conn.execute(select(users).where(users.c.email == email))).first()
    return _user(row) if row else None


async def user_by_id(conn: AsyncConnection, user_id: str) -> UserRecord | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def set_password_hash(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


async def count_operators(conn: AsyncConnection) -> int:
    return (await conn.execute(select(func.count()).select_from(users).where(users.c.operator.is_(True)))).scalar_one()


async def roles_of(conn: AsyncConnection, user_id: str) -> dict[str, Role]:
    rows = await conn.execute(select(memberships.c.game_id, memberships.c.role).where(memberships.c.user_id == user_id))
    return {r.game_id: Role(r.role) for r in rows}


async def members_of(conn: AsyncConnection, game_id: str) -> list[tuple[str, Role, datetime]]:
    rows = await conn.execute(
        select(users.c.email, memberships.c.role, memberships.c.created_at)
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.game_id == game_id)
        .order_by(users.c.email)
    )
    return [(r.email, Role(r.role), r.created_at) for r in rows]


async def role_in(conn: AsyncConnection, user_id: str, game_id: str) -> Role | None:
    row = (
        await conn.execute(
            select(memberships.c.role).where(memberships.c.user_id == user_id, memberships.c.game_id == game_id)
        )
    ).first()
    return Role(row.role) if row else None


async def put_membership(conn: AsyncConnection, user_id: str, game_id: str, role: Role, now: datetime) -> None:
    """Grant a role, replacing any other the account had in that game."""
    await conn.execute(delete(memberships).where(memberships.c.user_id == user_id, memberships.c.game_id == game_id))
    await conn.execute(insert(memberships).values(user_id=user_id, game_id=game_id, role=role.value, created_at=now))


async def delete_membership(conn: AsyncConnection, user_id: str, game_id: str) -> int:
    result = await conn.execute(
        delete(memberships).where(memberships.c.user_id == user_id, memberships.c.game_id == game_id)
    )
    return result.rowcount


async def insert_session(conn: AsyncConnection, record: SessionRecord, address: str | None) -> None:
    await conn.execute(
        insert(dashboard_sessions).values(
            token_hash=record.token_hash,
            user_id=record.user_id,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            address=address,
        )
    )


async def get_session(conn: AsyncConnection, token_hash: str) -> SessionRecord | None:
    row = (await conn.execute(select(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash))).first()
    return SessionRecord(row.token_hash, row.user_id, row.created_at, row.last_seen_at) if row else None


async def touch_session(conn: AsyncConnection, token_hash: str, now: datetime) -> None:
    await conn.execute(
        update(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash).values(last_seen_at=now)
    )


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash))


async def delete_idle_sessions(conn: AsyncConnection, seen_before: datetime) -> int:
    result = await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.last_seen_at < seen_before))
    return result.rowcount


async def delete_sessions_of(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.user_id == user_id))


async def set_reveal(conn: AsyncConnection, token_hash: str, value: str) -> None:
    await conn.execute(
        update(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash).values(reveal=value)
    )


async def get_reveal(conn: AsyncConnection, token_hash: str) -> str | None:
    stmt = select(dashboard_sessions.c.reveal).where(dashboard_sessions.c.token_hash == token_hash)
    return (await conn.execute(stmt.with_for_update())).scalar()


async def clear_reveal(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(
        update(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash).values(reveal=None)
    )
