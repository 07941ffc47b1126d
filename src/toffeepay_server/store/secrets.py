"""Installation secrets generated on first use and shared by every process through the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import insert_unless_present
from .tables import installation_secrets as t


async def get_or_create(conn: AsyncConnection, dialect: str, name: str, candidate: str, now: datetime) -> str:
    """The stored secret `name`; `candidate` becomes it when there is none yet (first writer wins)."""
    await conn.execute(insert_unless_present(dialect, t, name=name, value=candidate, created_at=now))
    return (await conn.execute(select(t.c.value).where(t.c.name == name))).scalar_one()
