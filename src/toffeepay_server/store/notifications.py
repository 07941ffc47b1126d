"""Processor notifications already handled, by the processor's own notification id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import processor_notifications as t


async def seen(conn: AsyncConnection, processor: str, notification_id: str) -> bool:
    row = await conn.execute(select(t.c.received_at).where(t.c.processor == processor, t.c.notification_id == notification_id))
    return row.first() is not None


async def remember(conn: AsyncConnection, dialect: str, processor: str, notification_id: str, now: datetime) -> None:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await conn.execute(
        insert(t).values(processor=processor, notification_id=notification_id, received_at=now).on_conflict_do_nothing()
    )
