"""Processor notifications handled once: a redelivered notification is acknowledged and skipped.

What a notification does (settling a payment, recording a dispute) is itself idempotent, so a
notification is remembered after it was handled: a crash in between only means handling it
again when the processor redelivers it.
"""

from __future__ import annotations

from ..store import notifications as store
from .context import ServiceContext


async def seen(ctx: ServiceContext, processor: str, notification_id: str) -> bool:
    async with ctx.db.read() as conn:
        return await store.seen(conn, processor, notification_id)


async def remember(ctx: ServiceContext, processor: str, notification_id: str) -> None:
    async with ctx.db.transaction() as uow:
        await store.remember(uow.conn, ctx.db.dialect, processor, notification_id, ctx.clock())
