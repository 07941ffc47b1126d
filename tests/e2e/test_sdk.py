"""The SDK (`toffeepay.ToffeePay`, `toffeepay.AsyncToffeePay`) against a real server on a port."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
import toffeepay

from tests.support import Game, Server, free_port, png_data_url

ITEM = {"title": "50 Gold Coins", "price": 499, "currency": "USD"}


def client(server: Server, game: Game, **options: Any) -> toffeepay.ToffeePay:
    return toffeepay.ToffeePay(game.sandbox_key, base_url=server.url, **options)


def async_client(server: Server, game: Game, **options: Any) -> toffeepay.AsyncToffeePay:
    return toffeepay.AsyncToffeePay(game.sandbox_key, base_url=server.url, **options)


class Proxy:
    """An HTTP proxy in front of the server that records requests and can fail the first one.

    `fail_first`: None forwards everything; "before" answers the first request 503
    without forwarding it; "after" forwards it, drops the server's answer and
    answers 503 (the work was done, the client never heard); "stall" answers
    nothing for `stall` seconds.
    """

    def __init__(self, target: str, fail_first: str | None = None, stall: float = 0.0) -> None:
        self.target = target
        self.fail_first = fail_first
        self.stall = stall
        self.requests: list[dict[str, str]] = []
        self.responses: list[tuple[int, dict[str, str]]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self.closed = False
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with proxy._lock:
                    proxy.requests.append(headers)
                    first = len(proxy.requests) == 1
                if proxy.stall:
                    time.sleep(proxy.stall)
                    if proxy.closed:
                        return
                if first and proxy.fail_first == "before":
                    self._send(503, {"content-type": "text/plain"}, b"upstream unavailable")
                    return
                forwarded = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}
                answer = httpx.post(proxy.target + self.path, content=body, headers=forwarded, timeout=30)
                with proxy._lock:
                    proxy.responses.append((answer.status_code, dict(answer.headers)))
                if first and proxy.fail_first == "after":
                    self._send(503, {"content-type": "text/plain"}, b"upstream unavailable")
                    return
                hop = ("content-length", "transfer-encoding", "connection", "content-encoding")
                passed = {k: v for k, v in answer.headers.items() if k not in hop}
                self._send(answer.status_code, passed, answer.content)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.wfile.write(body)

        return Handler

    def __enter__(self) -> Proxy:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def user_id() -> str:
    return f"player_{uuid.uuid4().hex[:8]}"


def test_session_lifecycle_sync(server: Server, game: Game, user_id: str) -> None:
    tp = client(server, game)
    created = tp.sessions.create(
        game_id=game.game_id,
        user_id=user_id,
        item={**ITEM, "image": png_data_url()},
        return_url="mygame://payment-complete",
        metadata={"sku": "gold_50"},
    )
    assert created.id.startswith("sess_") and created.session_id == created.id
    assert created.url == created.payment_url == f"{server.url}/{created.id}"

    session = tp.sessions.get(created.id)
    assert isinstance(session, toffeepay.types.Session)
    assert (session.status, session.user_id, session.game_id) == ("pending", user_id, game.game_id)
    assert (session.item.title, session.item.price, session.item.currency) == ("50 Gold Coins", 499, "USD")
    assert session.metadata == {"sku": "gold_50"} and session.return_url == "mygame://payment-complete"
    assert session.paid_at is None and session.created_at.to_datetime() < session.expires_at.to_datetime()
    assert tp.sessions.status(created.id).status == "pending"

    page = tp.sessions.list(user_id=user_id)
    assert [s.id for s in page] == [created.id] and page.total == 1 and not page.has_more

    assert tp.sessions.cancel(created.id) is None
    assert tp.sessions.status(created.id).status == "cancelled"
    with pytest.raises(toffeepay.FailedPreconditionError) as again:
        tp.sessions.cancel(created.id)
    assert again.value.reason == "session_not_pending" and again.value.code == "failed_precondition"
    assert again.value.request_id and again.value.request_id.startswith("req_")
    assert str(again.value).startswith("session_not_pending: ")


async def test_session_lifecycle_async(server: Server, game: Game, user_id: str) -> None:
    tp = async_client(server, game)
    created = await tp.sessions.create(game_id=game.game_id, user_id=user_id, item=toffeepay.types.Item(**ITEM))
    session = await tp.sessions.get(created.id)
    assert session.status == "pending" and session.item.price == 499
    assert (await tp.sessions.status(created.id)).status == "pending"
    page = await tp.sessions.list(user_id=user_id, status="pending")
    assert [s.id for s in page] == [created.id]
    await tp.sessions.cancel(created.id)
    assert (await tp.sessions.get(created.id)).cancelled_at is not None
    with pytest.raises(toffeepay.NotFoundError) as missing:
        await tp.sessions.get("sess_01h00000000000000000000000")
    assert missing.value.reason == "not_found"


def test_errors_carry_reason_codes(server: Server, game: Game) -> None:
    tp = client(server, game)
    cases: list[tuple[type[toffeepay.ToffeePayError], str, Any]] = [
        (
            toffeepay.InvalidRequestError,
            "invalid_currency",
            lambda: tp.sessions.create(game_id=game.game_id, user_id="p", item={**ITEM, "currency": "XXX"}),
        ),
        (
            toffeepay.InvalidRequestError,
            "invalid_price",
            lambda: tp.sessions.create(game_id=game.game_id, user_id="p", item={**ITEM, "price": 0}),
        ),
        (toffeepay.InvalidRequestError, "invalid_limit", lambda: tp.sessions.list(limit=251)),
        (
            toffeepay.PermissionDeniedError,
            "invalid_game_id",
            lambda: tp.sessions.create(game_id="someone_else", user_id="p", item=ITEM),
        ),
        (toffeepay.NotFoundError, "not_found", lambda: tp.payments.get("pay_01h00000000000000000000000")),
        (
            toffeepay.AuthenticationError,
            "unauthenticated",
            lambda: toffeepay.ToffeePay("sk_test_unknown", base_url=server.url).sessions.list(),
        ),
        (
            toffeepay.PermissionDeniedError,
            "sandbox_only",
            lambda: toffeepay.ToffeePay(game.live_key, base_url=server.url).sandbox.expire_session("sess_x"),
        ),
    ]
    for cls, reason, call in cases:
        with pytest.raises(cls) as raised:
            call()
        assert raised.value.reason == reason, raised.value
        assert isinstance(raised.value, toffeepay.ToffeePayError)
        assert raised.value.message and not raised.value.message.startswith(reason)
        assert raised.value.request_id and raised.value.http_status and raised.value.http_status < 500


def test_paging_walks_every_page(server: Server, game: Game, user_id: str) -> None:
    tp = client(server, game)
    created = [tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM).id for _ in range(5)]
    first = tp.sessions.list(user_id=user_id, limit=2)
    assert len(first) == 2 and first.total == 5 and first.has_more
    # Newest first, each session exactly once, over three requests.
    assert [s.id for s in first.auto_paging_iter()] == created[::-1]
    last = first.next_page().next_page()  # type: ignore[union-attr]
    assert last is not None and len(last) == 1 and not last.has_more and last.next_page() is None


async def test_paging_walks_every_page_async(server: Server, game: Game, user_id: str) -> None:
    tp = async_client(server, game)
    created = [(await tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM)).id for _ in range(3)]
    page = await tp.sessions.list(user_id=user_id, limit=1)
    assert [s.id async for s in page.auto_paging_iter()] == created[::-1]


def test_sandbox_payments_and_disputes(server: Server, game: Game, user_id: str) -> None:
    tp = client(server, game)
    session = tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM)
    payment = tp.sandbox.pay_session(session.id, method="apple_pay")
    assert payment.status == "succeeded" and payment.amount == 499 and payment.method == "apple_pay"
    assert tp.payments.get(payment.id).session_id == session.id
    assert tp.sessions.get(session.id).payment_id == payment.id
    assert [p.id for p in tp.payments.list(user_id=user_id)] == [payment.id]

    failed = tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM)
    declined = tp.sandbox.pay_session(failed.id, outcome="insufficient_funds")
    assert declined.status == "failed" and declined.failure_code == "insufficient_funds"
    assert tp.sessions.status(failed.id).status == "failed"

    dispute = tp.sandbox.create_dispute(payment.id, reason="fraudulent")
    assert dispute.payment_id == payment.id and dispute.amount == 499
    assert [d.id for d in tp.disputes.list(payment_id=payment.id)] == [dispute.id]

    expiring = tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM)
    assert tp.sandbox.expire_session(expiring.id).status == "expired"


def test_webhook_endpoints_and_events(server: Server, game: Game) -> None:
    tp = client(server, game)
    created = tp.webhooks.endpoints.create(url="https://example.com/hooks", events=["payment.succeeded"])
    assert created.secret.startswith("whsec_") and created.endpoint.url == "https://example.com/hooks"
    endpoint_id = created.endpoint.id
    assert [e.id for e in tp.webhooks.endpoints.list()] == [endpoint_id]
    updated = tp.webhooks.endpoints.update(endpoint_id, events=[], description="all events")
    assert list(updated.events) == [] and updated.description == "all events"
    rotated = tp.webhooks.endpoints.rotate_secret(endpoint_id, overlap_seconds=60)
    assert rotated.secret.startswith("whsec_") and rotated.secret != created.secret

    session = tp.sessions.create(game_id=game.game_id, user_id="p", item=ITEM)
    events = tp.webhooks.events.list(types=["session.created"])
    event = next(e for e in events.auto_paging_iter() if e.data.to_python()["session_id"] == session.id)
    body = toffeepay.event_to_dict(event)
    assert body["event"] == "session.created" and body["mode"] == "sandbox"
    assert body["data"]["item"] == ITEM  # whole numbers stay whole
    assert tp.webhooks.events.resend(event.id, endpoint_id=endpoint_id) == 1

    tp.webhooks.endpoints.delete(endpoint_id)
    assert tp.webhooks.endpoints.list() == []


@pytest.mark.parametrize("fail_first", ["before", "after"])
def test_retry_reuses_one_idempotency_key(server: Server, game: Game, user_id: str, fail_first: str) -> None:
    with Proxy(server.url, fail_first=fail_first) as proxy:
        tp = toffeepay.ToffeePay(game.sandbox_key, base_url=proxy.url, max_retries=2)
        created = tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM)
    keys = [r.get("idempotency-key") for r in proxy.requests]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    if fail_first == "after":
        # The first attempt did create the session; the retry got that same answer back.
        assert proxy.responses[1][1].get("idempotent-replayed") == "true"
    listed = client(server, game).sessions.list(user_id=user_id)
    assert [s.id for s in listed] == [created.id]


async def test_retry_async_with_caller_key(server: Server, game: Game, user_id: str) -> None:
    with Proxy(server.url, fail_first="after") as proxy:
        tp = toffeepay.AsyncToffeePay(game.sandbox_key, base_url=proxy.url)
        created = await tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM, idempotency_key="order-1")
    assert [r["idempotency-key"] for r in proxy.requests] == ["order-1", "order-1"]
    assert [s.id for s in client(server, game).sessions.list(user_id=user_id)] == [created.id]


def test_caller_idempotency_key_replays_and_refuses_reuse(server: Server, game: Game, user_id: str) -> None:
    tp = client(server, game)
    key = f"order-{uuid.uuid4()}"
    first = tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM, idempotency_key=key)
    again = tp.sessions.create(game_id=game.game_id, user_id=user_id, item=ITEM, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(toffeepay.InvalidRequestError) as reused:
        tp.sessions.create(game_id=game.game_id, user_id=user_id, item={**ITEM, "price": 999}, idempotency_key=key)
    assert reused.value.reason == "idempotency_key_reused"


def test_no_retry_of_refusals_and_reads_carry_no_key(server: Server, game: Game) -> None:
    with Proxy(server.url) as proxy:
        tp = toffeepay.ToffeePay(game.sandbox_key, base_url=proxy.url, max_retries=3)
        with pytest.raises(toffeepay.InvalidRequestError):
            tp.sessions.create(game_id=game.game_id, user_id="p", item={**ITEM, "currency": "XXX"})
        tp.sessions.list()
    assert len(proxy.requests) == 2
    assert "idempotency-key" in proxy.requests[0] and "idempotency-key" not in proxy.requests[1]


def test_retries_give_up_with_the_last_error(server: Server, game: Game) -> None:
    with Proxy(server.url, fail_first="before") as proxy:
        tp = toffeepay.ToffeePay(game.sandbox_key, base_url=proxy.url, max_retries=0)
        with pytest.raises(toffeepay.APIError) as raised:
            tp.sessions.list()
    assert raised.value.http_status == 503 and raised.value.code == "unavailable"
    assert len(proxy.requests) == 1


def test_timeout(server: Server, game: Game) -> None:
    with Proxy(server.url, stall=1.0) as proxy:
        tp = toffeepay.ToffeePay(game.sandbox_key, base_url=proxy.url, timeout=0.3, max_retries=1)
        started = time.monotonic()
        with pytest.raises(toffeepay.APITimeoutError) as raised:
            tp.sessions.list()
        elapsed = time.monotonic() - started
        assert isinstance(raised.value, toffeepay.APIConnectionError) and raised.value.http_status is None
        assert len(proxy.requests) == 2  # one retry, then the error
        assert elapsed < 1.5
        # A per-call timeout overrides the client's.
        assert len(tp.sessions.list(timeout=10)) == 0


async def test_timeout_async(server: Server, game: Game) -> None:
    with Proxy(server.url, stall=1.0) as proxy:
        tp = toffeepay.AsyncToffeePay(game.sandbox_key, base_url=proxy.url, timeout=0.3, max_retries=0)
        with pytest.raises(toffeepay.APITimeoutError):
            await tp.sessions.status("sess_x")
        assert len(proxy.requests) == 1


async def test_cancelled_async_call_is_not_retried(server: Server, game: Game) -> None:
    """Cancelling the task (here by asyncio.timeout) ends the call at once: no retry, no SDK error."""
    with Proxy(server.url, stall=1.0) as proxy:
        tp = toffeepay.AsyncToffeePay(game.sandbox_key, base_url=proxy.url, timeout=10, max_retries=3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await tp.sessions.list()
        assert time.monotonic() - started < 0.9
        call = asyncio.ensure_future(tp.sessions.create(game_id=game.game_id, user_id="p", item=ITEM))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(1.5)  # long enough for a retry's backoff to have sent one
        assert len(proxy.requests) == 2
        await tp.close()


def test_connection_refused_is_retried_then_raised() -> None:
    tp = toffeepay.ToffeePay("sk_test_x", base_url=f"http://127.0.0.1:{free_port()}", max_retries=1)
    with pytest.raises(toffeepay.APIConnectionError) as raised:
        tp.sessions.list()
    assert raised.value.reason is None and raised.value.request_id is None
