"""Paying a session and refunding a payment: the use cases that hand a payment or a refund to
a processor (the port in services/processor.py) and record its outcome.

The hosted page, SandboxService, PaymentService.RefundPayment and the dashboard all pay and
refund through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import structlog

from ..domain.keys import Principal
from ..domain.payments import FailureCode, Outcome, Payment
from ..domain.refunds import Refund, RefundFailureCode, RefundOutcome, RefundReason
from . import payments, refunds
from .context import ServiceContext
from .processor import Instructions, Processor, ProcessorError, Processors

log = structlog.get_logger("toffeepay.processors")


async def pay(
    ctx: ServiceContext,
    processor: Processor,
    session_id: str,
    instructions: Instructions,
    *,
    principal: Principal | None = None,
) -> Payment:
    """Create the session's payment and hand it to `processor`.

    Returns the payment settled when the processor answered at once, else still `processing`.
    """
    processor.check(instructions)
    payment = await payments.start_payment(
        ctx, session_id, method=instructions.method, processor=processor.name, principal=principal
    )
    # The payment exists before the processor hears of it (and no transaction waits on the network).
    await ctx.db.checkpoint()
    try:
        started = await processor.start(payment, instructions)
    except ProcessorError as exc:
        log.warning("processor refused a payment", processor=processor.name, payment_id=payment.id, error=str(exc))
        return await payments.settle_payment(ctx, payment.id, Outcome(FailureCode.PROCESSOR_ERROR))
    if started.outcome is not None:
        return await payments.settle_payment(ctx, payment.id, started.outcome, processor_ref=started.processor_ref)
    if started.processor_ref is not None:
        await payments.record_processor_ref(ctx, payment.id, started.processor_ref)
    return payment


async def refund(
    ctx: ServiceContext,
    processors: Processors,
    payment: Payment,
    *,
    amount: int | None,
    reason: RefundReason,
    options: Mapping[str, str] | None = None,
) -> Refund:
    """Create a refund of `payment` and hand it to the processor that took the payment.

    Returns the refund settled when the processor answered at once, else still `pending`.
    """
    processor = processors.for_payment(payment)
    processor.check_refund(options or {})
    created = await refunds.start_refund(ctx, payment, amount=amount, reason=reason, processor=processor.name)
    # The refund exists before the processor hears of it: its notification can always settle it.
    await ctx.db.checkpoint()
    try:
        started = await processor.refund(payment, created, options or {})
    except ProcessorError as exc:
        log.warning("processor refused a refund", processor=processor.name, refund_id=created.id, error=str(exc))
        return await refunds.settle_refund(ctx, created.id, RefundOutcome(RefundFailureCode.PROCESSOR_ERROR))
    if started.outcome is not None:
        return await refunds.settle_refund(ctx, created.id, started.outcome, processor_ref=started.processor_ref)
    if started.processor_ref is not None:
        await refunds.record_processor_ref(ctx, created.id, started.processor_ref)
        return replace(created, processor_ref=started.processor_ref)
    return created
