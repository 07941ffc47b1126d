"""The Stripe processor: PaymentIntents through the official SDK, without blocking the event loop.

`start` turns the card the player typed into a PaymentMethod, creates a PaymentIntent for the
session's amount and currency (the session, payment, game and player ids in its metadata) and
confirms it. Every call carries an idempotency key made of the payment id and the operation,
so the SDK's retries, and ours, never charge twice. Stripe's answer settles the payment at
once; when it cannot (still processing, or the answer was lost), Stripe's notification does.

`refund` creates a Stripe Refund of the payment's PaymentIntent, with an idempotency key made
of the refund id, so one refund is never paid out twice; Stripe's refund notifications settle
it when its answer does not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe
import structlog

from ...config import Secret, Settings
from ...domain.clock import Clock
from ...domain.keys import Mode
from ...domain.payments import FailureCode, Outcome, Payment
from ...domain.refunds import Refund
from ...services.processor import Instructions, Processor, ProcessorError, RefundStarted, Started
from . import transformers

NAME = "stripe"
TIMEOUT_SECONDS = 20
NETWORK_RETRIES = 2

log = structlog.get_logger("toffeepay.processors.stripe")


def _error(exc: stripe.StripeError) -> Mapping[str, Any]:
    """The error object of a Stripe error answer."""
    body = exc.json_body if isinstance(exc.json_body, Mapping) else {}
    error = body.get("error")
    return error if isinstance(error, Mapping) else {"code": exc.code, "message": exc.user_message}


def _key(payment: Payment, operation: str) -> stripe.RequestOptions:
    return {"idempotency_key": transformers.idempotency_key(payment.id, operation)}


def _describe(exc: stripe.StripeError) -> str:
    return f"{type(exc).__name__} (HTTP {exc.http_status}, code {exc.code}, request {exc.request_id})"


class StripeProcessor(Processor):
    name = NAME
    mode = Mode.LIVE.value
    # Wallets need Stripe.js and the wallet providers' own scripts, which the page does not load.
    wallets = False

    def __init__(
        self,
        api_key: Secret,
        webhook_secret: Secret,
        *,
        clock: Clock,
        api_base: str | None = None,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self.clock = clock
        self._webhook_secret = webhook_secret
        self._http = http_client or stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
        self.client = stripe.StripeClient(
            api_key.reveal(),
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=NETWORK_RETRIES,
        )

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> StripeProcessor | None:
        """The processor the settings configure, or None without TOFFEEPAY_STRIPE_API_KEY."""
        if settings.stripe_api_key is None:
            return None
        if settings.stripe_webhook_secret is None:
            raise ValueError(
                "TOFFEEPAY_STRIPE_WEBHOOK_SECRET is required with TOFFEEPAY_STRIPE_API_KEY (see docs/stripe.md)"
            )
        # The SDK's debug lines carry request bodies, card numbers included: never let them through.
        logging.getLogger("stripe").setLevel(logging.WARNING)
        return cls(
            settings.stripe_api_key, settings.stripe_webhook_secret, clock=clock, api_base=settings.stripe_api_base
        )

    def check(self, instructions: Instructions) -> None:
        transformers.check_method(instructions.method)
        transformers.card(instructions.fields, self.clock().date())

    def check_price(self, amount: int, currency: str) -> None:
        transformers.check_amount(amount, currency)

    async def start(self, payment: Payment, instructions: Instructions) -> Started:
        card = transformers.card(instructions.fields, self.clock().date())
        intents = self.client.v1.payment_intents
        try:
            method = await self.client.v1.payment_methods.create_async(
                transformers.payment_method_params(card), options=_key(payment, "payment_method")
            )
            intent = await intents.create_async(
                transformers.payment_intent_params(payment, method.id), options=_key(payment, "payment_intent")
            )
        except stripe.CardError as exc:
            return Started(None, transformers.failure(_error(exc)))
        except stripe.StripeError as exc:
            raise ProcessorError(f"Stripe refused the payment: {_describe(exc)}") from None
        try:
            confirmed = await intents.confirm_async(intent.id, options=_key(payment, "confirm"))
        except stripe.CardError as exc:
            return Started(intent.id, transformers.failure(_error(exc)))
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            # The confirmation may have reached Stripe and only its answer been lost.
            log.warning("confirmation answer lost", payment_id=payment.id, intent_id=intent.id, error=_describe(exc))
            lost = Outcome(FailureCode.PROCESSOR_ERROR, "Stripe could not be reached to confirm the payment.")
            return await self._cancel_or_wait(payment, intent.id, lost)
        except stripe.StripeError as exc:
            raise ProcessorError(f"Stripe refused the confirmation: {_describe(exc)}") from None
        try:
            outcome = transformers.intent_outcome(confirmed.to_dict())
        except transformers.Unexpected as exc:
            log.error(
                "unexpected PaymentIntent after confirmation",
                payment_id=payment.id,
                intent_id=intent.id,
                error=str(exc),
            )
            return await self._cancel_or_wait(payment, intent.id, Outcome(FailureCode.PROCESSOR_ERROR))
        if outcome is not None and confirmed.status == "requires_action":
            return await self._cancel_or_wait(payment, intent.id, outcome)
        return Started(intent.id, outcome)

    async def _cancel_or_wait(self, payment: Payment, intent_id: str, outcome: Outcome) -> Started:
        """Cancel an intent this page cannot finish: `outcome` if that worked, else wait for Stripe's notification.

        Stripe cancels only an intent that has not charged the card, so a refusal means the
        payment went ahead (or is under way) and its notification will settle it.
        """
        try:
            await self.client.v1.payment_intents.cancel_async(intent_id, options=_key(payment, "cancel"))
        except stripe.StripeError as exc:
            log.warning(
                "could not cancel; waiting for Stripe's notification",
                payment_id=payment.id,
                intent_id=intent_id,
                error=_describe(exc),
            )
            return Started(intent_id)
        return Started(intent_id, outcome)

    async def refund(self, payment: Payment, refund: Refund, options: Mapping[str, str]) -> RefundStarted:
        if not payment.processor_ref:
            raise ProcessorError(f"payment {payment.id} has no PaymentIntent to refund")
        key: stripe.RequestOptions = {"idempotency_key": transformers.idempotency_key(refund.id, "refund")}
        try:
            created = await self.client.v1.refunds.create_async(
                transformers.refund_params(payment, refund), options=key
            )
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            # The refund may have reached Stripe and only its answer been lost: its notification
            # (matched by the refund id in its metadata) settles it; until then it stays pending.
            log.warning("refund answer lost", refund_id=refund.id, error=_describe(exc))
            return RefundStarted(None)
        except stripe.StripeError as exc:
            raise ProcessorError(f"Stripe refused the refund: {_describe(exc)}") from None
        answer = created.to_dict()
        try:
            transformers.check_refund(answer, refund)
            return RefundStarted(created.id, transformers.refund_outcome(answer))
        except transformers.Unexpected as exc:
            log.error("unexpected Refund from Stripe", refund_id=refund.id, stripe_refund=created.id, error=str(exc))
            return RefundStarted(created.id)

    async def reconcile(self, payment: Payment) -> Started:
        """What Stripe says of a payment stuck in `processing` (see Processor.reconcile).

        The PaymentIntent is found by its id, else by the payment id in its metadata. When
        Stripe has none, a placeholder intent is created under the payment's own idempotency
        key and cancelled: a start still under way elsewhere can then no longer create one (its
        request, with other parameters, is refused), so failing the payment is safe.
        """
        intents = self.client.v1.payment_intents
        try:
            intent_id = await self._find_intent(payment)
            if intent_id is None:
                try:
                    placeholder = await intents.create_async(
                        transformers.payment_intent_params(payment, None), options=_key(payment, "payment_intent")
                    )
                except stripe.IdempotencyError:
                    return Started(None)  # created by the start itself, not yet searchable: ask again later
                intent_id = placeholder.id
            intent = (await intents.retrieve_async(intent_id)).to_dict()
        except stripe.StripeError as exc:
            raise ProcessorError(f"Stripe could not be asked about {payment.id}: {_describe(exc)}") from None
        try:
            transformers.check_intent(intent, payment)
            if transformers.never_confirmed(intent):
                interrupted = Outcome(FailureCode.PROCESSOR_ERROR, transformers.INTERRUPTED)
                return await self._cancel_or_wait(payment, intent_id, interrupted)
            outcome = transformers.intent_outcome(intent)
        except transformers.Unexpected as exc:
            raise ProcessorError(f"unexpected PaymentIntent for {payment.id}: {exc}") from None
        if outcome is not None and intent.get("status") in ("requires_action", "requires_payment_method"):
            return await self._cancel_or_wait(payment, intent_id, outcome)
        return Started(intent_id, outcome)

    async def _find_intent(self, payment: Payment) -> str | None:
        """The id of the payment's PaymentIntent, or None when Stripe has none."""
        intents = self.client.v1.payment_intents
        if payment.processor_ref:
            return payment.processor_ref
        try:
            candidates = list(
                (await intents.search_async({"query": transformers.search_query(payment.id), "limit": 10})).data
            )
        except stripe.InvalidRequestError:
            # A Stripe without the search API (localstripe): the newest intents.
            candidates = list((await intents.list_async({"limit": 100})).data)
        found = [i.to_dict() for i in candidates]
        mine = [i for i in found if (i.get("metadata") or {}).get("payment_id") == payment.id]
        # The intent the payment page created carries the card; a placeholder does not.
        mine.sort(key=lambda i: not i.get("payment_method"))
        return mine[0]["id"] if mine else None

    def construct_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """A notification's event, once its `Stripe-Signature` is verified.

        Raises stripe.SignatureVerificationError (bad or missing signature, too old) or
        ValueError (a body that is not a JSON object).
        """
        try:
            event = self.client.construct_event(payload, signature, self._webhook_secret.reveal())
        except (AttributeError, TypeError) as exc:  # verified, but JSON that is not an object
            raise ValueError("the notification is not a Stripe event") from exc
        return event.to_dict()

    async def close(self) -> None:
        await self._http.close_async()
