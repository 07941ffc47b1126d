"""The reconciler: live payments stuck in `processing` are settled by asking their processor.

A payment is created `processing` before its processor has it. Should the process die
between the two (or the processor's answer and its notification both be lost), nothing
would ever settle it, and its session could neither be paid, expire nor be cancelled. The
sweeper (in `toffeepay serve` and `toffeepay worker`) runs this every so often: each
payment still `processing` after TOFFEEPAY_RECONCILE_AFTER is looked up at its processor
and settled (or failed) through the same path as a notification. Asking is safe to repeat,
and safe to run in several processes at once: a payment settles once.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from ..services import payments
from ..services.context import ServiceContext
from ..services.processor import Processor, ProcessorError, Processors

log = structlog.get_logger("toffeepay.reconciler")
# Stuck payments looked at in one pass, per processor (the oldest first).
BATCH = 50


class Reconciler:
    def __init__(self, ctx: ServiceContext, processors: Processors, after: timedelta) -> None:
        self.ctx = ctx
        self.processors = processors
        self.after = after
        # How often a pass runs: a fraction of the bound, so a stuck payment waits about `after`.
        self.every = min(max(after / 4, timedelta(seconds=0.1)), timedelta(seconds=30))
        self._next = ctx.clock()

    async def maybe_run(self) -> int:
        """Run a pass when one is due; returns how many payments it settled."""
        now = self.ctx.clock()
        if now < self._next:
            return 0
        self._next = now + self.every
        return await self.run_once()

    async def run_once(self) -> int:
        settled = 0
        for processor in self.processors.all():
            settled += await self._reconcile(processor)
        return settled

    async def _reconcile(self, processor: Processor) -> int:
        cutoff = self.ctx.clock() - self.after
        settled = 0
        for payment in await payments.in_flight(self.ctx, processor.name, limit=BATCH):
            if payment.created_at > cutoff:
                break  # oldest first: the rest are younger still
            try:
                answer = await processor.reconcile(payment)
            except ProcessorError as exc:
                log.warning("could not reconcile a stuck payment", payment_id=payment.id, error=str(exc))
                continue
            if answer.outcome is None:
                if answer.processor_ref and answer.processor_ref != payment.processor_ref:
                    await payments.record_processor_ref(self.ctx, payment.id, answer.processor_ref)
                continue
            done = await payments.settle_payment(
                self.ctx, payment.id, answer.outcome, processor_ref=answer.processor_ref
            )
            log.info(
                "stuck payment reconciled",
                payment_id=payment.id,
                processor=processor.name,
                status=done.status.value,
                failure_code=done.failure_code.value if done.failure_code else None,
            )
            settled += 1
        return settled
