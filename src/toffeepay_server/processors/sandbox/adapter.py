"""The sandbox processor: settles asynchronously, through the same path as a real processor.

`start` plans the outcome and returns at once, leaving the payment `processing`. The
sandbox's notifications are produced by `settle_due`, which the sweeper runs in every
server and worker process: each payment whose time has come is settled through
`services.payments.settle_payment`, exactly as a processor webhook would settle it.
With `settle_after=0` the outcome is reported at once instead (SandboxService.PaySession).
Refunds go the same way: `refund` plans the outcome (success, unless a sandbox caller chose
`failed`) and `settle_due` settles it through `services.refunds.settle_refund`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from ...domain.clock import Clock
from ...domain.keys import Mode
from ...domain.payments import FailureCode, Outcome, Payment
from ...domain.refunds import Refund, RefundFailureCode, RefundOutcome
from ...services import payments, refunds
from ...services.context import ServiceContext
from ...services.processor import Instructions, Processor, ProcessorError, RefundStarted, Started
from . import transformers

NAME = "sandbox"
# A payment the sandbox never acknowledged (the process stopped in between) fails after this.
LOST_AFTER = timedelta(minutes=1)


class SandboxProcessor(Processor):
    name = NAME
    mode = Mode.SANDBOX.value

    def __init__(self, clock: Clock, settle_after: float) -> None:
        self.clock = clock
        self.settle_after = timedelta(seconds=max(settle_after, 0.0))

    def check(self, instructions: Instructions) -> None:
        transformers.choice(instructions.method, instructions.fields, self.clock().date())

    async def start(self, payment: Payment, instructions: Instructions) -> Started:
        choice = transformers.choice(instructions.method, instructions.fields, self.clock().date())
        if choice == transformers.PROCESSOR_ERROR:
            raise ProcessorError("sandbox test card 4000 0000 0000 0119: processor error")
        ref = transformers.reference(secrets.token_hex(8), choice, self.clock() + self.settle_after)
        if not self.settle_after:
            return Started(ref, transformers.outcome(choice, payment.amount))
        return Started(ref)

    def check_refund(self, options: Mapping[str, str]) -> None:
        transformers.refund_choice(options.get("outcome", ""))

    async def refund(self, payment: Payment, refund: Refund, options: Mapping[str, str]) -> RefundStarted:
        choice = transformers.refund_choice(options.get("outcome", ""))
        ref = transformers.refund_reference(secrets.token_hex(8), choice, self.clock() + self.settle_after)
        if not self.settle_after:
            return RefundStarted(ref, transformers.refund_outcome(choice))
        return RefundStarted(ref)

    async def reconcile(self, payment: Payment) -> Started:
        return Started(payment.processor_ref, _decide(payment, self.clock()))


def _decide(payment: Payment, now: datetime) -> Outcome | None:
    """The sandbox's outcome for an in-flight payment now; None while it is not yet due."""
    plan = transformers.planned(payment.processor_ref) if payment.processor_ref else None
    if plan is None:
        if now - payment.created_at < LOST_AFTER:
            return None
        return Outcome(FailureCode.PROCESSOR_ERROR, "The sandbox processor lost this payment.")
    if plan.due > now:
        return None
    return transformers.outcome(plan.choice, payment.amount)


async def settle_due(ctx: ServiceContext) -> int:
    """Deliver the sandbox's due notifications; returns how many payments and refunds were settled."""
    now = ctx.clock()
    settled = await _settle_due_refunds(ctx)
    for payment in await payments.in_flight(ctx, NAME):
        outcome = _decide(payment, now)
        if outcome is None:
            continue
        await payments.settle_payment(ctx, payment.id, outcome)
        settled += 1
    return settled


async def _settle_due_refunds(ctx: ServiceContext) -> int:
    now = ctx.clock()
    settled = 0
    for refund in await refunds.pending_refunds(ctx, NAME):
        plan = transformers.planned_refund(refund.processor_ref) if refund.processor_ref else None
        if plan is None:
            if now - refund.created_at < LOST_AFTER:
                continue
            outcome = RefundOutcome(RefundFailureCode.PROCESSOR_ERROR)
        elif plan.due > now:
            continue
        else:
            outcome = transformers.refund_outcome(plan.choice)
        await refunds.settle_refund(ctx, refund.id, outcome)
        settled += 1
    return settled


def new_dispute_id() -> str:
    """The sandbox's own id of a dispute it reports."""
    return f"sbx_dp_{secrets.token_hex(12)}"
