"""The processors an installation's settings configure: the sandbox, and Stripe when set up."""

from __future__ import annotations

from ..config import Settings
from ..domain.clock import Clock
from ..services.processor import Processors
from .sandbox.adapter import SandboxProcessor
from .stripe.adapter import StripeProcessor


def configured_processors(settings: Settings, clock: Clock) -> Processors:
    stripe = StripeProcessor.from_settings(settings, clock)  # None unless configured
    sandbox = SandboxProcessor(clock, settle_after=settings.sandbox_settle_seconds)
    return Processors(sandbox, *([stripe] if stripe else []))
