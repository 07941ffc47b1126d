"""Installation secrets generated on first use and shared by every process through the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import installation_secrets as t


async def get_or_create(conn: AsyncConnection, dialect: str, name: str, candidate: str, now: datetime) -> str:
    """The stored secret `name`; `candidate` becomes it when there is none yet (first writer wins)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await conn.execute(insert(t).values(name=name, value=candidate, created_at=now).on_conflict_do_nothing())
    return (await conn.execute(select(t.c.value).where(t.c.name == name))).scalar_one()
