"""Paying a session: the one path from a player's choice to a payment and its outcome."""

from __future__ import annotations

import structlog

from ..domain.keys import Principal
from ..domain.payments import FailureCode, Outcome, Payment
from ..services import payments
from ..services.context import ServiceContext
from .base import Instructions, Processor, ProcessorError

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
