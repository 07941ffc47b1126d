"""Operating figures: readiness (database reachable, schema current) and the outbox backlog."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from ..store import operations as store
from ..store.migrate import head_revisions
from .context import ServiceContext

READY_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    # Why not, for people: "database unreachable: ...", "schema is at x, this code needs y".
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    backlog: list[store.Backlog]
    disabled_endpoints: dict[str, int]


async def readiness(ctx: ServiceContext, *, expected: set[str] | None = None) -> Readiness:
    """Ready when the database answers within 2 s and its schema is the one this code ships."""
    expected = head_revisions() if expected is None else expected
    if (path := ctx.db.file_path) is not None and not os.path.exists(path):
        # Open connections would still read a deleted file: its absence is the answer.
        return Readiness(False, f"database file {path} is missing")
    try:
        async with asyncio.timeout(READY_TIMEOUT), ctx.db.reader.connect() as conn:
            found = await store.schema_revisions(conn)
    except TimeoutError:
        return Readiness(False, f"database did not answer within {READY_TIMEOUT:g} s")
    except Exception as exc:  # any driver's connection failure means "not ready", nothing more
        return Readiness(False, f"database unreachable: {type(exc).__name__}")
    if found != expected:
        have = ", ".join(sorted(found)) or "nothing (never migrated)"
        return Readiness(False, f"schema is at {have}; this version needs {', '.join(sorted(expected))}")
    return Readiness(True)


async def figures(ctx: ServiceContext) -> Figures:
    async with ctx.db.reader.connect() as conn:
        return Figures(await store.backlog(conn), await store.disabled_endpoints(conn))
