"""The background loops of one process, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from ..config import Settings
from ..services.context import ServiceContext
from ..services.processor import Processors
from .dispatcher import Dispatcher
from .reconciler import Reconciler
from .retention import run_retention
from .retry import RetryPolicy
from .sweeper import run_sweeper


class Background:
    def __init__(self, ctx: ServiceContext, settings: Settings, processors: Processors) -> None:
        self.ctx = ctx
        self.settings = settings
        self.processors = processors
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        reconciler = Reconciler(self.ctx, self.processors, timedelta(seconds=self.settings.reconcile_after))
        sweeper = run_sweeper(self.ctx, self.settings.sweep_interval, reconciler)
        self.tasks.append(asyncio.create_task(sweeper, name="sweeper"))
        dispatcher = Dispatcher(
            self.ctx,
            site_id=self.settings.site_id,
            policy=RetryPolicy(
                schedule=self.settings.webhook_retry_schedule, give_up_after=self.settings.webhook_retry_for
            ),
            concurrency=self.settings.webhook_concurrency,
            per_game=self.settings.webhook_game_concurrency,
            per_endpoint=self.settings.webhook_endpoint_concurrency,
            poll=self.settings.dispatch_poll,
            batch_window=self.settings.dispatch_batch_window,
        )
        self.tasks.append(asyncio.create_task(dispatcher.run(), name="webhook-dispatcher"))
        self.tasks.append(asyncio.create_task(run_retention(self.ctx), name="event-retention"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
