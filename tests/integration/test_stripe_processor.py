"""The Stripe adapter against localstripe, through the real `stripe` SDK.

What it asks Stripe and how it reads the answers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from tests.stripe_support import (
    API_KEY,
    DECLINED,
    NEEDS_3DS,
    SUCCEEDS,
    WEBHOOK_SECRET,
    LocalStripe,
    LosingProxy,
    event,
    sign,
)
from tests.support import free_port
from toffeepay_server.config import Secret
from toffeepay_server.domain.clock import system_clock
from toffeepay_server.domain.payments import FailureCode, Method, Outcome, Payment, PaymentStatus
from toffeepay_server.processors.stripe import transformers
from toffeepay_server.processors.stripe.adapter import StripeProcessor
from toffeepay_server.services.processor import Instructions, ProcessorError


class Recording(stripe.HTTPXClient):
    """The SDK's own async HTTP client, noting every request it sends."""

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.sent: list[tuple[str, str, str | None]] = []

    async def request_async(self, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        self.sent.append((method.upper(), url, headers.get("Idempotency-Key")))
        return await super().request_async(method, url, headers, post_data)


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    started = LocalStripe(tmp_path_factory.mktemp("localstripe")).start()
    yield started
    started.stop()


@pytest.fixture
async def http() -> AsyncIterator[Recording]:
    client = Recording()
    yield client
    await client.close_async()


def processor(api_base: str, http: stripe.HTTPClient | None = None) -> StripeProcessor:
    return StripeProcessor(
        Secret(API_KEY), Secret(WEBHOOK_SECRET), clock=system_clock, api_base=api_base, http_client=http
    )


def payment(amount: int = 499, currency: str = "USD") -> Payment:
    return Payment(
        id=f"pay_{uuid.uuid4().hex}",
        session_id="sess_1",
        game_id="space_shooter",
        mode="live",
        user_id="player_42",
        status=PaymentStatus.PROCESSING,
        amount=amount,
        currency=currency,
        method=Method.CARD,
        details="50 Gold Coins",
        processor="stripe",
        created_at=datetime.now(UTC),
    )


def card(number: str) -> Instructions:
    return Instructions(Method.CARD, {"number": number, "expiry": "12/39", "cvc": "123"})


async def test_a_payment_is_a_confirmed_intent_with_a_key_on_every_call(
    localstripe: LocalStripe, http: Recording
) -> None:
    paid = payment(500, "ISK")
    started = await processor(localstripe.url, http).start(paid, card(SUCCEEDS))
    assert started.outcome == Outcome() and started.processor_ref and started.processor_ref.startswith("pi_")
    assert [(m, u.removeprefix(localstripe.url)) for m, u, _ in http.sent] == [
        ("POST", "/v1/payment_methods"),
        ("POST", "/v1/payment_intents"),
        ("POST", f"/v1/payment_intents/{started.processor_ref}/confirm"),
    ]
    assert [key for _, _, key in http.sent] == [
        f"toffeepay:{paid.id}:payment_method",
        f"toffeepay:{paid.id}:payment_intent",
        f"toffeepay:{paid.id}:confirm",
    ]
    intent = localstripe.get(f"/v1/payment_intents/{started.processor_ref}")
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 50_000, "isk")
    assert intent["metadata"] == {
        "session_id": "sess_1",
        "payment_id": paid.id,
        "game_id": "space_shooter",
        "user_id": "player_42",
    }


async def test_a_declined_card_fails_the_payment(localstripe: LocalStripe) -> None:
    started = await processor(localstripe.url).start(payment(), card(DECLINED))
    assert started.processor_ref and started.outcome == Outcome(FailureCode.CARD_DECLINED, "Your card was declined.")


async def test_a_card_asking_for_3d_secure_is_cancelled_and_declined(localstripe: LocalStripe, http: Recording) -> None:
    paid = payment()
    started = await processor(localstripe.url, http).start(paid, card(NEEDS_3DS))
    assert started.outcome == Outcome(FailureCode.CARD_DECLINED, transformers.AUTHENTICATION_NEEDED)
    assert localstripe.get(f"/v1/payment_intents/{started.processor_ref}")["status"] == "canceled"
    assert http.sent[-1][2] == f"toffeepay:{paid.id}:cancel"


async def test_stripe_unreachable_is_a_processor_error() -> None:
    with pytest.raises(ProcessorError):
        await processor(f"http://127.0.0.1:{free_port()}").start(payment(), card(SUCCEEDS))


async def test_a_lost_confirmation_waits_for_stripe_or_cancels(localstripe: LocalStripe) -> None:
    proxy = LosingProxy(localstripe.url)
    try:
        losing = processor(proxy.url)
        # The card was charged: Stripe refuses to cancel, so the notification will settle the payment.
        charged = await losing.start(payment(), card(SUCCEEDS))
        assert charged.outcome is None and charged.processor_ref
        assert localstripe.get(f"/v1/payment_intents/{charged.processor_ref}")["status"] == "succeeded"
        # Declined behind the lost answer: nothing was charged, the intent is cancelled, the payment fails.
        declined = await losing.start(payment(), card(DECLINED))
        assert declined.outcome is not None and declined.outcome.failure_code is FailureCode.PROCESSOR_ERROR
        assert localstripe.get(f"/v1/payment_intents/{declined.processor_ref}")["status"] == "canceled"
        assert proxy.lost  # the confirmations did go through the proxy
    finally:
        proxy.close()


def test_notifications_are_verified_with_the_sdk() -> None:
    receiver = processor("http://127.0.0.1:9")
    body = json.dumps(event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"}, "evt_1")).encode()
    assert receiver.construct_event(body, sign(body))["id"] == "evt_1"
    for header in (sign(body, "whsec_other"), sign(body, timestamp=1), "t=1", None):
        with pytest.raises(stripe.SignatureVerificationError):
            receiver.construct_event(body, header)
    with pytest.raises(stripe.SignatureVerificationError):
        receiver.construct_event(body + b" ", sign(body))
    for signed in (b"[]", b"null", b"5", b"not json", b"\xff\xfe"):
        with pytest.raises(ValueError):
            receiver.construct_event(signed, sign(signed))
