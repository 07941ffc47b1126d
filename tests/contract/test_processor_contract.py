"""What every processor adapter promises the services (services/processor.py), checked for
the sandbox and for Stripe (against localstripe, through the real `stripe` SDK).

A new adapter joins by adding itself to the `adapter` fixture; the services rely on nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from tests.stripe_support import API_KEY, DECLINED, WEBHOOK_SECRET, LocalStripe
from tests.support import free_port
from toffeepay_server.config import Secret
from toffeepay_server.domain.clock import system_clock
from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.payments import FailureCode, Method, Outcome, Payment, PaymentStatus
from toffeepay_server.domain.refunds import Refund, RefundOutcome, RefundReason, RefundStatus
from toffeepay_server.processors.sandbox.adapter import SandboxProcessor
from toffeepay_server.processors.stripe.adapter import StripeProcessor
from toffeepay_server.services.processor import Instructions, Processor, ProcessorError, Processors

SUCCEEDS = "4242 4242 4242 4242"


@dataclass(frozen=True)
class Adapter:
    processor: Processor
    # A card the processor declines when it charges it.
    declined_card: str
    # The same adapter, unable to take a payment now (its processor unreachable or failing).
    failing: Callable[[], tuple[Processor, str]]


def sandbox() -> Adapter:
    processor = SandboxProcessor(system_clock, settle_after=0)
    return Adapter(processor, "4000 0000 0000 0002", lambda: (processor, "4000 0000 0000 0119"))


def stripe(api_base: str) -> Adapter:
    def make(base: str) -> StripeProcessor:
        return StripeProcessor(Secret(API_KEY), Secret(WEBHOOK_SECRET), clock=system_clock, api_base=base)

    return Adapter(make(api_base), DECLINED, lambda: (make(f"http://127.0.0.1:{free_port()}"), SUCCEEDS))


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    started = LocalStripe(tmp_path_factory.mktemp("localstripe")).start()
    yield started
    started.stop()


@pytest.fixture(params=["sandbox", "stripe"])
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[Adapter]:
    made = sandbox() if request.param == "sandbox" else stripe(request.getfixturevalue("localstripe").url)
    yield made
    await made.processor.close()


def card(number: str) -> Instructions:
    return Instructions(Method.CARD, {"number": number, "expiry": "12/39", "cvc": "123"})


def payment(processor: Processor, amount: int = 499) -> Payment:
    return Payment(
        id=f"pay_{uuid.uuid4().hex}",
        session_id=f"sess_{uuid.uuid4().hex}",
        game_id="space_shooter",
        mode=processor.mode,
        user_id="player_42",
        status=PaymentStatus.PROCESSING,
        amount=amount,
        currency="USD",
        method=Method.CARD,
        details="50 Gold Coins",
        processor=processor.name,
        created_at=datetime.now(UTC),
    )


def refund_of(paid: Payment, amount: int) -> Refund:
    return Refund(
        id=f"re_{uuid.uuid4().hex}",
        payment_id=paid.id,
        session_id=paid.session_id,
        game_id=paid.game_id,
        mode=paid.mode,
        user_id=paid.user_id,
        amount=amount,
        currency=paid.currency,
        reason=RefundReason.REQUESTED_BY_CUSTOMER,
        status=RefundStatus.PENDING,
        processor=paid.processor,
        created_at=datetime.now(UTC),
    )


async def test_it_names_itself_and_the_mode_it_pays(adapter: Adapter) -> None:
    processor = adapter.processor
    assert processor.name and processor.mode in ("sandbox", "live")
    assert Processors(processor).for_mode(processor.mode) is processor
    assert Processors(processor).for_payment(payment(processor)) is processor


async def test_bad_card_details_are_refused_before_any_payment_exists(adapter: Adapter) -> None:
    for bad in (card("1234"), Instructions(Method.CARD, {"number": SUCCEEDS, "expiry": "13/39", "cvc": "123"})):
        with pytest.raises(DomainError) as refused:
            adapter.processor.check(bad)
        assert refused.value.reason is Reason.INVALID_ARGUMENT
    adapter.processor.check(card(SUCCEEDS))


async def test_a_good_card_succeeds_with_the_processors_own_id(adapter: Adapter) -> None:
    started = await adapter.processor.start(payment(adapter.processor), card(SUCCEEDS))
    assert started.processor_ref
    assert started.outcome in (None, Outcome())


async def test_a_declined_card_fails_the_payment_as_declined(adapter: Adapter) -> None:
    started = await adapter.processor.start(payment(adapter.processor), card(adapter.declined_card))
    assert started.outcome is not None and started.outcome.failure_code is FailureCode.CARD_DECLINED


async def test_a_processor_that_cannot_take_the_payment_raises_processor_error(adapter: Adapter) -> None:
    failing, number = adapter.failing()
    try:
        with pytest.raises(ProcessorError):
            await failing.start(payment(failing), card(number))
    finally:
        await failing.close()


async def test_reconcile_reports_what_became_of_a_started_payment(adapter: Adapter) -> None:
    processor = adapter.processor
    paid = payment(processor)
    started = await processor.start(paid, card(SUCCEEDS))
    asked = await processor.reconcile(replace(paid, processor_ref=started.processor_ref))
    assert asked.outcome == Outcome()
    declined = payment(processor)
    refused = await processor.start(declined, card(adapter.declined_card))
    asked = await processor.reconcile(replace(declined, processor_ref=refused.processor_ref))
    assert asked.outcome is not None and not asked.outcome.succeeded


async def test_a_succeeded_payment_can_be_refunded_in_part_and_then_in_full(adapter: Adapter) -> None:
    processor = adapter.processor
    paid = payment(processor)
    started = await processor.start(paid, card(SUCCEEDS))
    taken = replace(paid, processor_ref=started.processor_ref, status=PaymentStatus.SUCCEEDED)
    processor.check_refund({})
    for amount in (100, 399):
        answer = await processor.refund(taken, refund_of(taken, amount), {})
        assert answer.processor_ref
        assert answer.outcome in (None, RefundOutcome())
