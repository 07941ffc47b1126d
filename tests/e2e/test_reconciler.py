"""Live payments left `processing` by a server killed mid-payment are settled by the reconciler.

A proxy in front of localstripe holds one Stripe request of the payment page's payment while
the test SIGKILLs the server: either Stripe never receives the PaymentIntent, or Stripe
charges the card and its answer never reaches anyone. A restarted server's reconciler asks
Stripe and settles the payment (no Stripe notification is configured here, so nothing else can).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ENGINES, make_database
from tests.payments_support import PageClient, wait_for
from tests.stripe_support import SUCCEEDS, LocalStripe, stripe_env
from tests.support import Api, Server, sql

RECONCILE = {"TOFFEEPAY_RECONCILE_AFTER": "1"}


class HoldingProxy:
    """Forwards to Stripe, but holds the first request `matches` picks (before or after
    forwarding it, as `forward` says) until the test has killed the server; then drops it."""

    def __init__(self, target: str, matches: Callable[[str, str], bool], *, forward: bool) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hold = not proxy.held.is_set() and matches(self.command, self.path.split("?")[0])
                if hold and not forward:
                    proxy.held.set()
                    proxy.release.wait(60)
                    return  # Stripe never sees it
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, f"{target}{self.path}", content=body, headers=headers, timeout=10)
                if hold:
                    proxy.held.set()
                    proxy.release.wait(60)
                    return  # Stripe did it; its answer is lost
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=ENGINES)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def stripe(tmp_path: Path) -> Iterator[LocalStripe]:
    """A localstripe of this test alone, sending no notifications anywhere."""
    ls = LocalStripe(tmp_path).start()
    yield ls
    ls.stop()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test started; stopped at its end."""
    started: list[Server] = []
    yield started
    for srv in started:
        srv.stop()


def _killed_mid_payment(
    db_url: str,
    workdir: Path,
    stripe: LocalStripe,
    proxy: HoldingProxy,
    servers: list[Server],
    restart_env: dict[str, str] | None = None,
) -> tuple[Api, str]:
    """Pay a live session on its page through `proxy`; SIGKILL the server while the proxy
    holds Stripe's request. Returns the live API of the restarted server and the session id."""
    srv = Server(db_url, workdir, env={**stripe_env(proxy.url), **RECONCILE})
    servers.append(srv)
    srv.start()
    game = srv.create_game()
    live = srv.api(game.live_key)
    created = live.create_session(game.game_id)
    page = PageClient(created["url"])
    assert page.open().status_code == 200
    paying = threading.Thread(target=lambda: _ignore_errors(lambda: page.pay("card", number=SUCCEEDS)))
    paying.start()
    assert proxy.held.wait(30), "the server never called Stripe"
    srv.stop(kill=True)
    proxy.release.set()
    paying.join(30)
    # The payment exists, `processing`, and nothing is left to settle it.
    rows = sql(db_url, "SELECT status FROM payments WHERE session_id = :s", {"s": created["id"]})
    assert [r[0] for r in rows] == ["processing"]
    restarted = Server(db_url, workdir, env={**stripe_env(stripe.url), **RECONCILE, **(restart_env or {})})
    servers.append(restarted)
    return restarted.start().api(game.live_key), created["id"]


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server died under the request
        call()


def _settled(live: Api, session_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := live.ok("PaymentService/GetSession", {"id": session_id}))["status"] != "pending" and s,
        timeout=30,
    )


def test_a_payment_stripe_never_received_is_failed(
    fresh_db: str, tmp_path: Path, stripe: LocalStripe, servers: list[Server]
) -> None:
    proxy = HoldingProxy(
        stripe.url, lambda method, path: method == "POST" and path == "/v1/payment_intents", forward=False
    )
    try:
        live, session_id = _killed_mid_payment(fresh_db, tmp_path, stripe, proxy, servers)
    finally:
        proxy.close()
    session = _settled(live, session_id)
    assert session["status"] == "failed"
    payment = live.ok("PaymentService/GetPayment", {"id": session["payment_id"]})
    assert payment["status"] == "failed" and payment["failure_code"] == "processor_error"
    assert "interrupted" in payment["failure_message"]
    # Stripe holds the placeholder made under the payment's key, cancelled: no late start can charge.
    intents = [
        i
        for i in stripe.get("/v1/payment_intents?limit=100")["data"]
        if i["metadata"].get("payment_id") == payment["id"]
    ]
    assert [i["status"] for i in intents] == ["canceled"]
    events = live.ok("WebhookService/ListEvents", {"limit": 250})["events"]
    mine = [e["event"] for e in events if e["data"].get("session_id") == session_id]
    assert "payment.failed" in mine and "session.failed" in mine


def test_a_payment_stripe_charged_whose_answer_was_lost_is_paid(
    fresh_db: str, tmp_path: Path, stripe: LocalStripe, servers: list[Server]
) -> None:
    proxy = HoldingProxy(stripe.url, lambda method, path: method == "POST" and path.endswith("/confirm"), forward=True)
    try:
        live, session_id = _killed_mid_payment(fresh_db, tmp_path, stripe, proxy, servers)
    finally:
        proxy.close()
    session = _settled(live, session_id)
    assert session["status"] == "paid"
    payment = live.ok("PaymentService/GetPayment", {"id": session["payment_id"]})
    assert payment["status"] == "succeeded" and payment["amount"] == 499
    ref = sql(fresh_db, "SELECT processor_ref FROM payments WHERE id = :id", {"id": payment["id"]})[0][0]
    assert stripe.get(f"/v1/payment_intents/{ref}")["status"] == "succeeded"


def test_toffeepay_worker_reconciles_too(
    fresh_db: str, tmp_path: Path, stripe: LocalStripe, servers: list[Server]
) -> None:
    """The restarted server runs no background work; a `toffeepay worker` beside it settles the payment."""
    proxy = HoldingProxy(stripe.url, lambda method, path: method == "POST" and path.endswith("/confirm"), forward=True)
    try:
        live, session_id = _killed_mid_payment(
            fresh_db, tmp_path, stripe, proxy, servers, restart_env={"TOFFEEPAY_BACKGROUND": "0"}
        )
    finally:
        proxy.close()
    api_only = servers[-1]
    worker = subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", "worker"],
        env=api_only.env,
        cwd=api_only.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _settled(live, session_id)["status"] == "paid"
    finally:
        worker.terminate()
        worker.wait(30)
