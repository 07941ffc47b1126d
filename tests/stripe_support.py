"""Stripe for tests: localstripe on a port, notifications signed the way Stripe signs them.

localstripe (a fake, stateful Stripe server) speaks Stripe's API to the real `stripe` SDK and
posts signed `payment_intent.*` events to the webhooks configured on it. Events it never emits
(`charge.dispute.created`) are built here and signed independently of the SDK:
`Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.

localstripe declines a card when it is charged only for 4000 0000 0000 0341 (its other
"declined" numbers fail only when attached to a customer), and asks 3-D Secure for
4000 0025 0000 3155.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port

API_KEY = "sk_test_toffeepay_localstripe"
WEBHOOK_SECRET = "whsec_toffeepay_localstripe_signing"
NOTIFICATION_PATH = "/processors/stripe/webhook"
SUCCEEDS = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0341"
NEEDS_3DS = "4000 0025 0000 3155"


class LocalStripe:
    """`python -m localstripe` in a subprocess on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"localstripe-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStripe:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"localstripe exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/v1/balance", headers=self.auth, timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("localstripe did not start")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def send_webhooks_to(self, name: str, url: str, secret: str = WEBHOOK_SECRET) -> None:
        """Have localstripe post its events, signed with `secret`, to `url`."""
        httpx.post(
            f"{self.url}/_config/webhooks/{name}", json={"url": url, "secret": secret}, timeout=5
        ).raise_for_status()

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}{path}", headers=self.auth, timeout=5)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def stripe_env(api_base: str) -> dict[str, str]:
    return {
        "TOFFEEPAY_STRIPE_API_KEY": API_KEY,
        "TOFFEEPAY_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TOFFEEPAY_STRIPE_API_BASE": api_base,
    }


class LosingProxy:
    """Forwards to localstripe, but answers 500 to every PaymentIntent confirmation it forwarded.

    Stripe did the work; only its answer was lost on the way back.
    """

    def __init__(self, target: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, f"{target}{self.path}", content=body, headers=headers, timeout=10)
                status, content = answer.status_code, answer.content
                if self.path.endswith("/confirm"):
                    proxy.lost.append(self.path)
                    status, content = 500, b'{"error": {"type": "api_error", "message": "lost"}}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.lost: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send, computed from its documented recipe."""
    t = int(time.time()) if timestamp is None else timestamp
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def event(type_: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """A Stripe event as Stripe posts it."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
        "data": {"object": obj},
    }


def dispute(
    dispute_id: str,
    intent_id: str | None,
    amount: int,
    currency: str = "usd",
    reason: str = "fraudulent",
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Dispute object as `charge.dispute.created` carries it."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": currency,
        "reason": reason,
        "status": "needs_response",
        "charge": f"ch_{uuid.uuid4().hex[:14]}",
        "payment_intent": intent_id,
        "created": int(time.time()),
        "livemode": False,
        "metadata": metadata or {},
        "evidence_details": {
            "due_by": int(time.time()) + 86400 * 7,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
    }


def notify(
    server_url: str, body: dict[str, Any] | bytes, *, header: str | None = None, secret: str = WEBHOOK_SECRET
) -> httpx.Response:
    """POST a notification to the server as Stripe would, signed unless `header` is given."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign(payload, secret) if header is None else header,
    }
    return httpx.post(f"{server_url}{NOTIFICATION_PATH}", content=payload, headers=headers, timeout=30)


class PendingRefundsProxy:
    """Forwards to localstripe; while `pending` is set, answers each new Refund as still `pending`.

    localstripe settles every refund at once; Stripe itself leaves some pending and tells the
    outcome later in a notification (`refund.updated`, `refund.failed`), which tests then send.
    """

    def __init__(self, target: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, f"{target}{self.path}", content=body, headers=headers, timeout=10)
                status, content = answer.status_code, answer.content
                if self.command == "POST" and self.path == "/v1/refunds" and status == 200:
                    proxy.refund_keys[answer.json()["id"]] = self.headers.get("Idempotency-Key", "")
                    if proxy.pending:
                        content = json.dumps({**answer.json(), "status": "pending"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.pending = False
        # The Idempotency-Key each Stripe Refund was created with, by its id.
        self.refund_keys: dict[str, str] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
