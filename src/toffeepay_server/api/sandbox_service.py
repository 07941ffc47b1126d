"""pay.v1.SandboxService: test helpers for sandbox keys (live keys get `sandbox_only`).

PaySession settles synchronously: the payment is created `processing` (`payment.created`)
and settled by the sandbox processor before the call returns, so the answer is the final
Payment and every event is already in the outbox. The payment page, by contrast, settles
asynchronously (TOFFEEPAY_SANDBOX_SETTLE_SECONDS) so players see `processing`.

CreateRefund refunds as PaymentService.RefundPayment does, with the outcome the caller
chose; the sandbox processor settles it a moment later, as it settles every refund.
"""

from __future__ import annotations

from typing import Any

from toffeepay._proto.pay.v1 import resources_pb as rpb
from toffeepay._proto.pay.v1 import sandbox_pb as pb

from ..domain.errors import DomainError, Reason
from ..domain.payments import parse_method
from ..domain.refunds import parse_reason
from ..processors.sandbox import adapter as sandbox
from ..services import disputes, processing, refunds, sessions
from ..services.context import ServiceContext
from ..services.processor import Instructions, Processors
from . import auth, convert


def _required(value: str, name: str) -> str:
    if not value:
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} is required")
    return value


class SandboxService:
    def __init__(self, ctx: ServiceContext, processors: Processors) -> None:
        self.ctx = ctx
        self.processor = sandbox.SandboxProcessor(ctx.clock, settle_after=0)
        # Refunds go to the installation's sandbox processor, which settles them a moment later.
        self.processors = processors

    async def pay_session(self, request: pb.PaySessionRequest, ctx: Any, /) -> rpb.Payment:
        principal = auth.sandbox_principal()
        session_id = _required(request.session_id, "session_id")
        instructions = Instructions(parse_method(request.method), {"outcome": request.outcome})
        payment = await processing.pay(self.ctx, self.processor, session_id, instructions, principal=principal)
        return convert.payment(payment)

    async def expire_session(self, request: pb.ExpireSessionRequest, ctx: Any, /) -> rpb.Session:
        principal = auth.sandbox_principal()
        session_id = _required(request.session_id, "session_id")
        expired = await sessions.expire_now(self.ctx, principal, session_id)
        return convert.session(expired, self.ctx.page_url(expired.id))

    async def create_dispute(self, request: pb.CreateDisputeRequest, ctx: Any, /) -> rpb.Dispute:
        principal = auth.sandbox_principal()
        dispute = await disputes.dispute_payment(
            self.ctx,
            principal,
            _required(request.payment_id, "payment_id"),
            reason=request.reason,
            amount=request.amount if request.has_field("amount") else None,
            processor=sandbox.NAME,
            processor_dispute_id=sandbox.new_dispute_id(),
        )
        return convert.dispute(dispute)

    async def create_refund(self, request: pb.CreateRefundRequest, ctx: Any, /) -> rpb.Refund:
        principal = auth.sandbox_principal()
        payment = await refunds.payment_to_refund(self.ctx, principal, request.payment_id)
        refund = await processing.refund(
            self.ctx,
            self.processors,
            payment,
            amount=request.amount if request.has_field("amount") else None,
            reason=parse_reason(convert.optional(request, "reason")),
            options={"outcome": request.outcome},
        )
        return convert.refund(refund)
