"""Rows of the installation's return-token signing keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.return_tokens import SigningKey
from .database import insert_unless_present
from .tables import signing_keys as t


def _key(row: Any, private_jwk: dict[str, str] | None) -> SigningKey:
    return SigningKey(
        kid=row.kid,
        generation=row.generation,
        public_x=row.public_x,
        created_at=row.created_at,
        retired_at=row.retired_at,
        private_jwk=private_jwk,
    )


async def all_keys(conn: AsyncConnection) -> list[tuple[SigningKey, str]]:
    """Every key, newest first, each with its sealed private key."""
    rows = await conn.execute(select(t).order_by(t.c.generation.desc()))
    return [(_key(r, None), r.private_key) for r in rows]


async def newest(conn: AsyncConnection) -> tuple[SigningKey, str] | None:
    row = (await conn.execute(select(t).order_by(t.c.generation.desc()).limit(1))).first()
    return (_key(row, None), row.private_key) if row else None


async def insert_key(conn: AsyncConnection, dialect: str, key: SigningKey, sealed_private_key: str) -> bool:
    """Insert a key of a new generation; False when another process took that generation first."""
    result = await conn.execute(
        insert_unless_present(
            dialect,
            t,
            kid=key.kid,
            generation=key.generation,
            public_x=key.public_x,
            private_key=sealed_private_key,
            created_at=key.created_at,
        )
    )
    return result.rowcount == 1


async def retire(conn: AsyncConnection, kid: str, at: Any) -> None:
    await conn.execute(update(t).where(t.c.kid == kid, t.c.retired_at.is_(None)).values(retired_at=at))
