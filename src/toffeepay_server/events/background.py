"""The background loops of one process, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib

from ..config import Settings
from ..services.context import ServiceContext
from .sweeper import run_sweeper


class Background:
    def __init__(self, ctx: ServiceContext, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(run_sweeper(self.ctx, self.settings.sweep_interval), name="sweeper"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
