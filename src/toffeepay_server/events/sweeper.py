"""The expiry sweeper: records each lapsed session's expiry and its event within seconds.

Each tick also delivers the sandbox processor's due notifications (its payments' outcomes)
and reports paid sessions the game has not fulfilled within the grace period.
"""

from __future__ import annotations

import asyncio

import structlog

from ..processors.sandbox import adapter as sandbox
from ..services import fulfilment, idempotency, sessions
from ..services.context import ServiceContext
from .reconciler import Reconciler

log = structlog.get_logger("toffeepay.sweeper")


async def sweep_once(ctx: ServiceContext) -> int:
    expired = await sessions.sweep_expired(ctx)
    if expired:
        log.info("sessions expired", count=expired)
    settled = await sandbox.settle_due(ctx)
    overdue = await fulfilment.sweep_overdue(ctx)
    if overdue:
        log.info("fulfilment overdue", count=overdue)
    return expired + settled + overdue


async def run_sweeper(ctx: ServiceContext, interval: float, reconciler: Reconciler | None = None) -> None:
    """Run until cancelled; a failing sweep is logged and retried on the next tick.

    With a reconciler, each tick also settles live payments stuck in `processing` (when a pass is due).
    """
    ticks = 0
    while True:
        try:
            while await sweep_once(ctx):
                pass
            if reconciler is not None:
                await reconciler.maybe_run()
            ticks += 1
            if ticks % 3600 == 1:
                await idempotency.purge(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiry sweep failed")
        await asyncio.sleep(interval)
