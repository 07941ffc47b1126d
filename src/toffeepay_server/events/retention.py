"""Event retention: events (with their deliveries and attempts) are kept 30 days."""

from __future__ import annotations

import asyncio

import structlog

from ..services import outbox
from ..services.context import ServiceContext

log = structlog.get_logger("toffeepay.retention")


async def run_retention(ctx: ServiceContext, interval: float = 3600.0) -> None:
    """Purge old events now and then every `interval` seconds, until cancelled."""
    while True:
        try:
            if purged := await outbox.purge_old_events(ctx):
                log.info("old events purged", count=purged)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event purge failed")
        await asyncio.sleep(interval)
