"""`toffeepay listen`: pull a sandbox game's events and forward them, signed, to a local URL.

Pulling (ListEvents with the `after` cursor) needs no inbound connection to the developer's
machine, and a cursor kept across polls loses no event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx
from toffeepay import ToffeePay, event_to_dict
from toffeepay.types import Event

from ..events import signing

PAGE = 100


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One event handed to the receiver: its HTTP status, or the error that stopped it."""

    event_id: str
    event: str
    status: int | None
    latency_ms: int
    error: str | None = None

    @property
    def taken(self) -> bool:
        """The receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


class Listener:
    """Forwards every event that commits after it starts, in commit order."""

    def __init__(
        self,
        client: ToffeePay,
        forward_to: str,
        secret: str,
        *,
        types: Sequence[str] = (),
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.forward_to = forward_to
        self.secret = secret
        self.types = list(types)
        self.http = http or httpx.Client(timeout=10, follow_redirects=False, trust_env=False)
        self.clock = clock
        self.cursor = self._latest()
        # Events the receiver did not take (no answer, or not 2xx), oldest first, to resend.
        self.failed: dict[str, Event] = {}

    def _latest(self) -> str | None:
        """The newest event so far: forwarding starts after it."""
        newest = self.client.webhooks.events.list(types=self.types, limit=1).data
        return newest[0].id if newest else None

    def _since(self, cursor: str | None) -> Iterator[Event]:
        """Events that committed after `cursor`, oldest first."""
        if cursor is None:
            # There were none at start, so all are new; without a cursor the list is newest first.
            seen: dict[str, Event] = {}
            for event in self.client.webhooks.events.list(types=self.types, limit=PAGE).auto_paging_iter():
                seen.setdefault(event.id, event)
            yield from reversed(seen.values())
            return
        while True:
            page = self.client.webhooks.events.list(types=self.types, after=cursor, limit=PAGE)
            yield from page.data
            if not page.has_more or not page.data:
                return
            cursor = page.data[-1].id

    def poll(self) -> Iterator[Forwarded]:
        """Forward the events committed since the last poll, in commit order."""
        for event in self._since(self.cursor):
            yield self._track(event, self.forward(event))
            self.cursor = event.id

    def resend_failed(self) -> Iterator[Forwarded]:
        """Forward again, in order, each event the receiver has not yet taken."""
        for event in list(self.failed.values()):
            yield self._track(event, self.forward(event))

    def _track(self, event: Event, forwarded: Forwarded) -> Forwarded:
        if forwarded.taken:
            self.failed.pop(event.id, None)
        else:
            self.failed[event.id] = event
        return forwarded

    def forward(self, event: Event) -> Forwarded:
        body = json.dumps(event_to_dict(event), separators=(",", ":")).encode()
        headers = signing.json_headers(event.id, event.event, body, int(self.clock()), [self.secret])
        started = time.monotonic()
        try:
            response = self.http.post(self.forward_to, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Forwarded(event.id, event.event, None, _ms(started), error=str(exc) or type(exc).__name__)
        return Forwarded(event.id, event.event, response.status_code, _ms(started))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
