"""Processor notifications already handled, by the processor's own notification id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import insert_unless_present
from .tables import processor_notifications as t


async def seen(conn: AsyncConnection, processor: str, notification_id: str) -> bool:
    row = await conn.execute(
        select(t.c.received_at).where(t.c.processor == processor, t.c.notification_id == notification_id)
    )
    return row.first() is not None


async def remember(conn: AsyncConnection, dialect: str, processor: str, notification_id: str, now: datetime) -> None:
    await conn.execute(
        insert_unless_present(dialect, t, processor=processor, notification_id=notification_id, received_at=now)
    )
