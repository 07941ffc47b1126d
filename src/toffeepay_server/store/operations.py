"""Figures operators watch (the outbox backlog, disabled endpoints) and the schema version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.deliveries import DeliveryStatus
from .tables import deliveries as d
from .tables import events as ev
from .tables import webhook_endpoints as ep


@dataclass(frozen=True, slots=True)
class Backlog:
    """Per mode: deliveries still to make (pending, or events not yet fanned out) and the oldest."""

    mode: str
    pending: int
    oldest: datetime | None


async def backlog(conn: AsyncConnection) -> list[Backlog]:
    pending = (
        select(ep.c.mode, func.count(), func.min(d.c.created_at))
        .select_from(d.join(ep, ep.c.id == d.c.endpoint_id))
        .where(d.c.status == DeliveryStatus.PENDING.value)
        .group_by(ep.c.mode)
    )
    unfanned = (
        select(ev.c.mode, func.count(), func.min(ev.c.created_at))
        .where(ev.c.fanned_out_at.is_(None))
        .group_by(ev.c.mode)
    )
    found: dict[str, Backlog] = {}
    for statement, counts in ((pending, True), (unfanned, False)):
        for mode, count, oldest in await conn.execute(statement):
            before = found.get(mode, Backlog(mode, 0, None))
            firsts = [t for t in (before.oldest, oldest) if t is not None]
            # An event not yet fanned out may have no endpoint to go to: it only dates the backlog.
            found[mode] = Backlog(mode, before.pending + (count if counts else 0), min(firsts) if firsts else None)
    return list(found.values())


async def disabled_endpoints(conn: AsyncConnection) -> dict[str, int]:
    """Endpoints switched off (by a person or for failing), per mode; deleted ones are not counted."""
    statement = (
        select(ep.c.mode, func.count()).where(ep.c.enabled.is_(False), ep.c.deleted_at.is_(None)).group_by(ep.c.mode)
    )
    return {mode: count for mode, count in await conn.execute(statement)}


async def schema_revisions(conn: AsyncConnection) -> set[str]:
    """The Alembic revisions the database is at (empty when it was never migrated)."""
    table = "alembic_version"
    if not await conn.run_sync(lambda sync: sync.dialect.has_table(sync, table)):
        return set()
    return {row[0] for row in await conn.execute(text(f"SELECT version_num FROM {table}"))}
