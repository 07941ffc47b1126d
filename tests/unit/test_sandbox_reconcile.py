"""The sandbox processor's answer to the reconciler, without I/O."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from toffeepay_server.domain.payments import FailureCode, Method, Payment, PaymentStatus
from toffeepay_server.processors.sandbox import adapter
from toffeepay_server.services.processor import Instructions

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _payment(**fields: object) -> Payment:
    base = Payment(
        id="pay_1",
        session_id="sess_1",
        game_id="g",
        mode="sandbox",
        user_id="p",
        status=PaymentStatus.PROCESSING,
        amount=499,
        currency="USD",
        method=Method.CARD,
        details="Coins",
        processor="sandbox",
        created_at=NOW,
    )
    return replace(base, **fields)


def test_sandbox_reconcile_follows_its_plan() -> None:
    clock = [NOW]
    processor = adapter.SandboxProcessor(lambda: clock[0], settle_after=5)
    payment = _payment()
    started = asyncio.run(
        processor.start(
            payment, Instructions(Method.CARD, {"number": "4000000000009995", "expiry": "12/39", "cvc": "123"})
        )
    )
    planned = replace(payment, processor_ref=started.processor_ref)
    assert asyncio.run(processor.reconcile(planned)).outcome is None  # not due yet
    clock[0] = NOW + timedelta(seconds=6)
    answer = asyncio.run(processor.reconcile(planned))
    assert answer.outcome is not None and answer.outcome.failure_code is FailureCode.INSUFFICIENT_FUNDS
    assert answer.processor_ref == started.processor_ref


def test_sandbox_reconcile_fails_a_payment_it_never_received() -> None:
    clock = [NOW + timedelta(seconds=30)]
    processor = adapter.SandboxProcessor(lambda: clock[0], settle_after=5)
    assert asyncio.run(processor.reconcile(_payment())).outcome is None  # it may still arrive
    clock[0] = NOW + adapter.LOST_AFTER
    answer = asyncio.run(processor.reconcile(_payment()))
    assert answer.outcome is not None and answer.outcome.failure_code is FailureCode.PROCESSOR_ERROR
