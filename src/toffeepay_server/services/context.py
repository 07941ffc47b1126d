"""What every use case needs: the database, the clock and the id generators (all injectable)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from ..config import Settings
from ..domain import ids
from ..domain import webhooks as webhook_rules
from ..domain.clock import Clock, system_clock
from ..domain.fulfilment import DEFAULT_GRACE
from ..store import database
from ..store.database import Database
from ..store.secret_box import Keyring

T = TypeVar("T")


@dataclass
class ServiceContext:
    db: Database
    public_url: str
    clock: Clock = system_clock
    new_id: ids.IdFactory = ids.new_id
    new_event_id: Callable[[], str] = ids.new_event_id
    # none | sandbox | all: which endpoints may use http and private or loopback addresses.
    private_webhook_targets: str = "none"
    # An endpoint failing every attempt this long is reported (endpoint.failing), then disabled.
    webhook_warn_after: timedelta = timedelta(days=1)
    webhook_disable_after: timedelta = timedelta(days=5)
    # Chance for sandbox chaos (duplicates, delays).
    rng: random.Random = field(default_factory=random.Random)
    # Sends one signed request now (SendTestEvent): set by the app from the webhook dispatcher's
    # sender, an adapter this layer cannot import. Takes a Job, returns an Outcome.
    webhook_sender: Callable[[Any], Awaitable[Any]] | None = None
    # How long after payment a session the game has not fulfilled counts as overdue.
    fulfillment_grace: timedelta = DEFAULT_GRACE

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int = 10) -> ServiceContext:
        return cls(
            db=Database(
                settings.database_url, pool_size=pool_size, keyring=Keyring(settings.secret_key, settings.key_file)
            ),
            public_url=settings.public_url,
            private_webhook_targets=settings.private_webhook_targets,
            webhook_warn_after=settings.webhook_warn_after,
            webhook_disable_after=settings.webhook_disable_after,
            fulfillment_grace=settings.fulfillment_grace,
        )

    def private_targets_allowed(self, mode: str) -> bool:
        return webhook_rules.private_allowed(self.private_webhook_targets, mode)

    def page_url(self, session_id: str) -> str:
        return f"{self.public_url}/{session_id}"


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached now (answer `unavailable`, not `internal`)."""
    return database.is_outage(exc)


def run_with_context(settings: Settings, action: Callable[[ServiceContext], Awaitable[T]], *, pool_size: int = 10) -> T:
    """Run one use case from synchronous code (the command line), then close the database."""

    async def main() -> T:
        ctx = ServiceContext.from_settings(settings, pool_size=pool_size)
        try:
            return await action(ctx)
        finally:
            await ctx.db.dispose()

    return asyncio.run(main())
