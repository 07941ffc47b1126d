"""Stripe's notifications (webhooks) at POST /processors/stripe/webhook.

Each is verified with the SDK (`Stripe-Signature`; 400 when it does not verify), handled once
per Stripe event id, and answered 2xx whenever retrying could not change the outcome: an
event about an object ToffeePay does not know, or one it does not act on, is logged and
acknowledged. Only a failure on our side (the database) answers 5xx, so Stripe retries.

- `payment_intent.succeeded`, `payment_intent.payment_failed`, `payment_intent.canceled`
  settle the payment through `services.payments.settle_payment`, as the sandbox does.
- `refund.created`, `refund.updated`, `refund.failed` (and `charge.refunded`, for each refund
  its Charge lists) settle a pending refund through `services.refunds.settle_refund`, matched
  by the Stripe Refund's id (our `processor_ref`) or the refund id in its metadata.
- `charge.dispute.created` records the dispute once, matched to the payment by its
  PaymentIntent (our `processor_ref`), and announces it (`dispute.created`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...services import disputes, notifications, payments, refunds
from ...services.context import ServiceContext
from . import transformers
from .adapter import NAME, StripeProcessor

PATH = "/processors/stripe/webhook"

log = structlog.get_logger("toffeepay.processors.stripe")


def _answer(status: int, **body: object) -> Response:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


class StripeNotifications:
    def __init__(self, ctx: ServiceContext, processor: StripeProcessor, *, max_bytes: int) -> None:
        self.ctx = ctx
        self.processor = processor
        self.max_bytes = max_bytes

    def route(self) -> Route:
        return Route(PATH, self.receive, methods=["POST"])

    async def receive(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_bytes:
                return _answer(413, error="request_too_large")
        try:
            event = self.processor.construct_event(bytes(body), request.headers.get("stripe-signature"))
        except stripe.SignatureVerificationError:
            log.warning("notification refused: its Stripe-Signature does not verify")
            return _answer(400, error="invalid_signature")
        except ValueError:
            log.warning("notification refused: not a Stripe event")
            return _answer(400, error="invalid_event")
        event_id = event.get("id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= transformers.MAX_ID:
            return _answer(400, error="invalid_event")
        if await notifications.seen(self.ctx, NAME, event_id):
            return _answer(200, received=True, duplicate=True)
        await self.handle(event_id, event)
        await notifications.remember(self.ctx, NAME, event_id)
        return _answer(200, received=True)

    async def handle(self, event_id: str, event: dict[str, object]) -> None:
        try:
            notice = transformers.notification(event)
            if isinstance(notice, transformers.IntentChanged):
                await self._intent_changed(event_id, notice)
            elif isinstance(notice, transformers.DisputeOpened):
                await self._dispute_opened(event_id, notice)
            elif isinstance(notice, transformers.RefundsChanged):
                for obj in notice.refunds:
                    await self._refund_changed(event_id, obj)
            else:
                log.info("notification ignored", event_id=event_id, type=event.get("type"))
        except transformers.Unexpected as exc:
            log.error("notification not understood", event_id=event_id, type=event.get("type"), error=str(exc))

    async def _intent_changed(self, event_id: str, notice: transformers.IntentChanged) -> None:
        payment = await payments.find_processor_payment(
            self.ctx, NAME, processor_ref=notice.intent_id, payment_id=notice.payment_id
        )
        if payment is None:
            log.info("notification for an unknown PaymentIntent", event_id=event_id, intent_id=notice.intent_id)
            return
        transformers.check_intent(notice.intent, payment)
        outcome = transformers.intent_outcome(notice.intent)
        if outcome is None:
            return
        settled = await payments.settle_payment(self.ctx, payment.id, outcome, processor_ref=notice.intent_id)
        log.info("payment notification applied", event_id=event_id, payment_id=settled.id, status=settled.status.value)

    async def _refund_changed(self, event_id: str, obj: Mapping[str, Any]) -> None:
        refund = await refunds.find_processor_refund(
            self.ctx, NAME, processor_ref=obj["id"], refund_id=transformers.refund_hint(obj)
        )
        if refund is None:
            log.info("notification for an unknown Refund", event_id=event_id, stripe_refund=obj["id"])
            return
        transformers.check_refund(obj, refund)
        outcome = transformers.refund_outcome(obj)
        if outcome is None:
            return
        settled = await refunds.settle_refund(self.ctx, refund.id, outcome, processor_ref=obj["id"])
        log.info("refund notification applied", event_id=event_id, refund_id=settled.id, status=settled.status.value)

    async def _dispute_opened(self, event_id: str, notice: transformers.DisputeOpened) -> None:
        payment = await payments.find_processor_payment(
            self.ctx, NAME, processor_ref=notice.intent_id, payment_id=notice.payment_id
        )
        dispute = await disputes.record_dispute(
            self.ctx,
            processor=NAME,
            processor_dispute_id=notice.dispute_id,
            mode=self.processor.mode,
            payment_id=payment.id if payment else None,
            reason=notice.reason,
            amount=notice.amount,
            currency=notice.currency,
            hints=disputes.Hints(game_id=notice.game_id, session_id=notice.session_id, user_id=notice.user_id),
        )
        log.info(
            "dispute recorded",
            event_id=event_id,
            dispute_id=dispute.id,
            payment_id=dispute.payment_id,
            matched=payment is not None,
        )
