"""Games and their API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.keys import Mode
from . import prepared
from .prepared import Prepared
from .tables import api_keys, games


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    game_id: str
    mode: Mode
    key_hash: str
    display_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None


def _key(row) -> KeyRecord:  # type: ignore[no-untyped-def]
    return KeyRecord(
        id=row.id,
        game_id=row.game_id,
        mode=Mode(row.mode),
        key_hash=row.key_hash,
        display_prefix=row.display_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


async def game_exists(conn: AsyncConnection, game_id: str) -> bool:
    row = await conn.execute(select(games.c.game_id).where(games.c.game_id == game_id))
    return row.first() is not None


async def insert_game(conn: AsyncConnection, game_id: str, now: datetime) -> None:
    await conn.execute(insert(games).values(game_id=game_id, created_at=now))


async def list_games(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(games.c.game_id).order_by(games.c.game_id))
    return [r.game_id for r in rows]


async def insert_key(conn: AsyncConnection, record: KeyRecord) -> None:
    await conn.execute(
        insert(api_keys).values(
            id=record.id,
            game_id=record.game_id,
            mode=record.mode.value,
            key_hash=record.key_hash,
            display_prefix=record.display_prefix,
            created_at=record.created_at,
            revoked_at=None,
        )
    )


# It runs on every API request.
_KEY_BY_HASH = Prepared(select(api_keys).where(api_keys.c.key_hash == bindparam("key_hash")))


async def key_by_hash(conn: prepared.Connection, key_hash: str) -> KeyRecord | None:
    row = await prepared.fetch_one(conn, _KEY_BY_HASH, {"key_hash": key_hash})
    return None if row is None else KeyRecord(row[0], row[1], Mode(row[2]), *row[3:])


async def touch_key(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


async def keys_of(conn: AsyncConnection, game_id: str) -> list[KeyRecord]:
    rows = await conn.execute(select(api_keys).where(api_keys.c.game_id == game_id).order_by(api_keys.c.created_at))
    return [_key(r) for r in rows]


async def revoke_keys(
    conn: AsyncConnection,
    now: datetime,
    *,
    key_id: str | None = None,
    game_id: str | None = None,
    mode: Mode | None = None,
) -> int:
    """Revoke the active keys matching every given filter; returns how many."""
    stmt = update(api_keys).where(api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    if key_id is not None:
        stmt = stmt.where(api_keys.c.id == key_id)
    if game_id is not None:
        stmt = stmt.where(api_keys.c.game_id == game_id)
    if mode is not None:
        stmt = stmt.where(api_keys.c.mode == mode.value)
    result = await conn.execute(stmt)
    return result.rowcount
