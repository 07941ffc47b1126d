"""Helpers for payment tests: the payment page over plain HTTP, and the outbox and payments as stored."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from tests.support import Server, sql

T = TypeVar("T")
TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
CARDS = {
    "succeeded": "4242 4242 4242 4242",
    "insufficient_funds": "4000 0000 0000 9995",
    "card_declined": "4000 0000 0000 0002",
}


@dataclass
class PageClient:
    """One browser tab on a session's payment page: its own cookie jar and CSRF token."""

    url: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    token: str | None = None

    def open(self, **headers: str) -> httpx.Response:
        response = self.client.get(self.url, headers=headers)
        if match := TOKEN.search(response.text):
            self.token = match.group(1)
        return response

    def pay(self, method: str = "card", **fields: str) -> httpx.Response:
        if method == "card":
            fields = {"number": CARDS["succeeded"], "expiry": "12/39", "cvc": "123", **fields}
        return self.client.post(f"{self.url}/pay", data={"csrf_token": self.token or "", "method": method, **fields})

    def cancel(self) -> httpx.Response:
        return self.client.post(f"{self.url}/cancel", data={"csrf_token": self.token or ""})

    def state(self) -> str:
        return self.client.get(f"{self.url}/status").json()["status"]


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until `probe` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        if value := probe():
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def wait_settled(api: Any, session_id: str) -> dict[str, Any]:
    """The session once its payment is settled (paid or failed)."""
    return wait_for(
        lambda: (s := api.ok("PaymentService/GetSession", {"id": session_id}))["status"] in ("paid", "failed") and s
    )


def session_events(server: Server, session_id: str) -> list[dict[str, Any]]:
    """The outbox rows about one session, in commit order: {type, sequence, body}."""
    rows = sql(
        server.db_url,
        "SELECT type, sequence, body FROM events WHERE session_id = :id ORDER BY position",
        {"id": session_id},
    )
    return [{"type": r[0], "sequence": r[1], "body": json.loads(r[2])} for r in rows]


def payments_of(server: Server, session_id: str) -> list[dict[str, Any]]:
    """Every payment row of a session, whatever its status."""
    rows = sql(server.db_url, "SELECT id, status, method FROM payments WHERE session_id = :id", {"id": session_id})
    return [{"id": r[0], "status": r[1], "method": r[2]} for r in rows]
