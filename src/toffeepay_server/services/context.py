"""What every use case needs: the database, the clock and the id generators (all injectable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..domain import ids
from ..domain.clock import Clock, system_clock
from ..store.database import Database


@dataclass
class ServiceContext:
    db: Database
    public_url: str
    clock: Clock = system_clock
    new_id: ids.IdFactory = ids.new_id
    new_event_id: Callable[[], str] = ids.new_event_id

    def page_url(self, session_id: str) -> str:
        return f"{self.public_url}/{session_id}"
