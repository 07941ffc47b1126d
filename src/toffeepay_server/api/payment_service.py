"""pay.v1.PaymentService: sessions, payments, refunds and disputes of the caller's game."""

from __future__ import annotations

from typing import Any

from toffeepay._proto.pay.v1 import payment_pb as pb
from toffeepay._proto.pay.v1 import resources_pb as rpb

from ..domain import listing
from ..domain.errors import DomainError, Reason
from ..domain.refunds import parse_reason
from ..domain.sessions import new_session
from ..services import fulfilment, payments, processing, refunds, sessions
from ..services.context import ServiceContext
from ..services.processor import Processors
from . import auth, convert


class PaymentService:
    def __init__(self, ctx: ServiceContext, processors: Processors) -> None:
        self.ctx = ctx
        self.processors = processors

    async def create_session(self, request: pb.CreateSessionRequest, ctx: Any, /) -> pb.CreateSessionResponse:
        principal = auth.principal()
        if not request.game_id:
            raise DomainError(Reason.INVALID_ARGUMENT, "game_id is required")
        sessions.check_game(principal, request.game_id)
        item = request.item
        if item is None:
            raise DomainError(Reason.INVALID_ARGUMENT, "item is required")
        new = new_session(
            game_id=request.game_id,
            user_id=request.user_id,
            title=item.title,
            price=item.price,
            currency=item.currency,
            image=convert.optional(item, "image"),
            return_url=convert.optional(request, "return_url"),
            metadata=dict(request.metadata),
            expires_at=convert.when(request, "expires_at"),
            live=principal.live,
            now=self.ctx.clock(),
        )
        created = await sessions.create_session(self.ctx, principal, new, processors=self.processors)
        url = self.ctx.page_url(created.id)
        return pb.CreateSessionResponse(id=created.id, url=url, session_id=created.id, payment_url=url)

    async def get_session(self, request: pb.GetSessionRequest, ctx: Any, /) -> rpb.Session:
        found = await sessions.get_session(self.ctx, auth.principal(), convert.one_id(request, "session_id"))
        return convert.session(found, self.ctx.page_url(found.id))

    async def get_session_status(self, request: pb.GetSessionStatusRequest, ctx: Any, /) -> pb.GetSessionStatusResponse:
        session_id = convert.one_id(request, "session_id")
        status = await sessions.get_status(self.ctx, auth.principal(), session_id)
        return pb.GetSessionStatusResponse(id=session_id, session_id=session_id, status=status.value)

    async def cancel_session(self, request: pb.CancelSessionRequest, ctx: Any, /) -> pb.CancelSessionResponse:
        await sessions.cancel_session(self.ctx, auth.principal(), convert.one_id(request, "session_id"))
        return pb.CancelSessionResponse()

    async def fulfill_session(self, request: pb.FulfillSessionRequest, ctx: Any, /) -> rpb.Session:
        found = await fulfilment.fulfil_session(self.ctx, auth.principal(), convert.one_id(request, "session_id"))
        return convert.session(found, self.ctx.page_url(found.id))

    async def list_sessions(self, request: pb.ListSessionsRequest, ctx: Any, /) -> pb.ListSessionsResponse:
        page = listing.page(
            request.limit, request.offset, convert.when(request, "from"), convert.when(request, "to"), default_limit=50
        )
        found, total = await sessions.list_sessions(
            self.ctx,
            auth.principal(),
            game_id=convert.optional(request, "game_id"),
            user_id=convert.optional(request, "user_id"),
            status=convert.optional(request, "status"),
            page=page,
            fulfilled=request.fulfilled if request.has_field("fulfilled") else None,
        )
        return pb.ListSessionsResponse(
            sessions=[convert.session(s, self.ctx.page_url(s.id)) for s in found],
            total=total,
            has_more=page.offset + len(found) < total,
        )

    async def get_payment(self, request: pb.GetPaymentRequest, ctx: Any, /) -> rpb.Payment:
        found = await payments.get_payment(self.ctx, auth.principal(), convert.one_id(request, "payment_id"))
        return convert.payment(found)

    async def list_payments(self, request: pb.ListPaymentsRequest, ctx: Any, /) -> pb.ListPaymentsResponse:
        principal = auth.principal()
        sessions.check_game(principal, convert.optional(request, "game_id"))
        page = listing.page(
            request.limit, request.offset, convert.when(request, "from"), convert.when(request, "to"), default_limit=50
        )
        found, total = await payments.list_payments(
            self.ctx, principal, user_id=convert.optional(request, "user_id"), page=page
        )
        return pb.ListPaymentsResponse(
            payments=[convert.payment(p) for p in found], total=total, has_more=page.offset + len(found) < total
        )

    async def list_disputes(self, request: pb.ListDisputesRequest, ctx: Any, /) -> pb.ListDisputesResponse:
        page = listing.page(
            request.limit, request.offset, convert.when(request, "from"), convert.when(request, "to"), default_limit=100
        )
        found, total = await payments.list_disputes(
            self.ctx, auth.principal(), payment_id=convert.optional(request, "payment_id"), page=page
        )
        return pb.ListDisputesResponse(
            disputes=[convert.dispute(d) for d in found], total=total, has_more=page.offset + len(found) < total
        )

    async def refund_payment(self, request: pb.RefundPaymentRequest, ctx: Any, /) -> rpb.Refund:
        payment = await refunds.payment_to_refund(self.ctx, auth.principal(), request.payment_id)
        refund = await processing.refund(
            self.ctx,
            self.processors,
            payment,
            amount=request.amount if request.has_field("amount") else None,
            reason=parse_reason(convert.optional(request, "reason")),
        )
        return convert.refund(refund)

    async def get_refund(self, request: pb.GetRefundRequest, ctx: Any, /) -> rpb.Refund:
        return convert.refund(await refunds.get_refund(self.ctx, auth.principal(), request.id))

    async def list_refunds(self, request: pb.ListRefundsRequest, ctx: Any, /) -> pb.ListRefundsResponse:
        page = listing.page(
            request.limit, request.offset, convert.when(request, "from"), convert.when(request, "to"), default_limit=100
        )
        found, total = await refunds.list_refunds(
            self.ctx, auth.principal(), payment_id=convert.optional(request, "payment_id"), page=page
        )
        return pb.ListRefundsResponse(
            refunds=[convert.refund(r) for r in found], total=total, has_more=page.offset + len(found) < total
        )
