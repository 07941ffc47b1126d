"""The audit log of changes made by people (dashboard and command line).

A change made inside `pending(entry)` writes its entry in the same transaction as the
change itself: the unit of work inserts it just before it commits (see database.py), so
the log never shows a change that did not happen, nor misses one that did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .paging import page_of
from .tables import audit_log


@dataclass
class AuditEntry:
    actor: str
    action: str
    user_id: str | None = None
    game_id: str | None = None
    mode: str | None = None
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    address: str | None = None
    at: datetime | None = None
    id: int | None = None
    # Set once a transaction has written it.
    written: bool = False


_PENDING: ContextVar[AuditEntry | None] = ContextVar("toffeepay_audit_pending", default=None)


@contextlib.contextmanager
def pending(entry: AuditEntry) -> Iterator[AuditEntry]:
    """Within this block, the first committed write transaction records `entry`."""
    token = _PENDING.set(entry)
    try:
        yield entry
    finally:
        _PENDING.reset(token)


def take_pending() -> AuditEntry | None:
    entry = _PENDING.get()
    return entry if entry is not None and not entry.written else None


async def insert_entry(conn: AsyncConnection, entry: AuditEntry) -> None:
    assert entry.at is not None, "an audit entry carries the time of its change"
    await conn.execute(
        insert(audit_log).values(
            at=entry.at,
            actor=entry.actor,
            user_id=entry.user_id,
            game_id=entry.game_id,
            mode=entry.mode,
            action=entry.action,
            target=entry.target,
            details=entry.details,
            address=entry.address,
        )
    )


async def list_entries(
    conn: AsyncConnection, *, game_id: str | None, limit: int, offset: int
) -> tuple[list[AuditEntry], int]:
    """Newest first; `game_id` None: every entry (the operator's view)."""
    conditions = [audit_log.c.game_id == game_id] if game_id is not None else []
    rows, total = await page_of(conn, audit_log, [audit_log], conditions, [audit_log.c.id.desc()], limit, offset)
    return [
        AuditEntry(
            actor=r.actor,
            action=r.action,
            user_id=r.user_id,
            game_id=r.game_id,
            mode=r.mode,
            target=r.target,
            details=r.details,
            address=r.address,
            at=r.at,
            id=r.id,
            written=True,
        )
        for r in rows
    ], total
