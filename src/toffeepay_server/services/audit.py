"""Recording who changed what, when and from where; reading the audit log."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ..domain.listing import Page
from ..store import audit as store
from ..store.audit import AuditEntry
from .context import ServiceContext


@dataclass(frozen=True, slots=True)
class Actor:
    """A person making a change: their account (email and id) and their client address."""

    name: str
    user_id: str | None = None
    address: str | None = None


COMMAND_LINE = Actor("command line", None, "command line")


def recording(
    ctx: ServiceContext,
    actor: Actor,
    action: str,
    *,
    game_id: str | None = None,
    mode: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AbstractContextManager[AuditEntry]:
    """The change made inside this block is logged in its own transaction (nothing logged if it fails)."""
    return store.pending(
        AuditEntry(
            actor=actor.name,
            action=action,
            user_id=actor.user_id,
            game_id=game_id,
            mode=mode,
            target=target,
            details=details or {},
            address=actor.address,
            at=ctx.clock(),
        )
    )


async def list_entries(ctx: ServiceContext, *, game_id: str | None, page: Page) -> tuple[list[AuditEntry], int]:
    async with ctx.db.read() as conn:
        return await store.list_entries(conn, game_id=game_id, limit=page.limit, offset=page.offset)
