"""Operating it: /metrics on its own address (two workers), /readyz, request ids, refusals that speak."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from toffeepay._proto.google.rpc.error_details_pb import ErrorInfo

from tests.conftest import ENGINES, make_database
from tests.receiver import Answer, Receiver
from tests.support import Server, free_port

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of /metrics, parsed by prometheus-client's own text parser."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def metered(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`toffeepay serve --workers 2` with metrics on a port of their own, on a database of its own:
    the suite's shared server would otherwise deliver some of this server's webhooks (and count them)."""
    metrics_port = free_port()
    engine = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    own_db = make_database(engine, tmp_path_factory.mktemp("metered-db"))
    server = Server(
        next(own_db),
        tmp_path_factory.mktemp("metered"),
        env={"TOFFEEPAY_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}", "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"},
        args=("--workers", "2"),
    )
    server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
    yield server.start()
    server.stop()
    next(own_db, None)  # drops the database


def error_info(response: httpx.Response) -> ErrorInfo:
    """The ErrorInfo detail of a Connect error, decoded from its binary value."""
    details = [d for d in response.json().get("details", []) if d["type"] == "google.rpc.ErrorInfo"]
    assert len(details) == 1, response.text
    raw = details[0]["value"]
    return ErrorInfo.from_binary(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def test_metrics_count_exactly_the_traffic(metered: Server) -> None:
    url = metered.metrics_url  # type: ignore[attr-defined]
    game = metered.create_game()
    api = metered.api(game.sandbox_key)
    receiver = Receiver()
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/hooks"), "events": ["payment.succeeded"]})
    receiver.expect("/hooks", created["secret"], Answer(500))
    before = scrape(url)
    assert url.rsplit(":", 1)[1] != str(metered.port)
    public = httpx.get(f"{metered.url}/metrics", timeout=10)
    assert "toffeepay_rpc_requests_total" not in public.text  # never on the public port

    sessions = [api.create_session(game.game_id) for _ in range(3)]
    for price in (4.99, -1):
        api.refused(
            "PaymentService/CreateSession",
            {"game_id": game.game_id, "user_id": "p", "item": {"title": "x", "price": price, "currency": "USD"}},
            "invalid_price",
            "invalid_argument",
        )
    api.refused("PaymentService/CreateSession", {}, "unauthenticated", "unauthenticated", key="sk_test_nope")
    api.ok("SandboxService/PaySession", {"session_id": sessions[0]["id"], "method": "card"})
    api.ok("SandboxService/PaySession", {"session_id": sessions[1]["id"], "method": "card"})
    api.ok("SandboxService/PaySession", {"session_id": sessions[2]["id"], "method": "card", "outcome": "card_declined"})
    receiver.wait_for("/hooks", 2)

    def settled() -> tuple[Samples, int, int]:
        hooks = receiver.at("/hooks")
        return scrape(url), sum(r.status == 200 for r in hooks), sum(r.status != 200 for r in hooks)

    deadline = time.monotonic() + 20
    while True:
        after, ok, failed = settled()
        moved = {
            outcome: value(after, "toffeepay_webhook_deliveries_total", mode="sandbox", outcome=outcome)
            - value(before, "toffeepay_webhook_deliveries_total", mode="sandbox", outcome=outcome)
            for outcome in ("succeeded", "failed")
        }
        if moved == {"succeeded": ok, "failed": failed} or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert moved == {"succeeded": ok, "failed": failed}, (moved, ok, failed)
    assert ok >= 1 and failed >= 1

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    create = {"service": "pay.v1.PaymentService", "method": "CreateSession"}
    assert delta("toffeepay_rpc_requests_total", **create, code="ok") == 3
    assert delta("toffeepay_rpc_requests_total", **create, code="invalid_argument") == 2
    assert delta("toffeepay_rpc_requests_total", **create, code="unauthenticated") == 1
    assert delta("toffeepay_rpc_duration_seconds_count", **create) == 6
    assert delta("toffeepay_rpc_duration_seconds_bucket", **create, le="+Inf") == 6
    pay = {"service": "pay.v1.SandboxService", "method": "PaySession"}
    assert delta("toffeepay_rpc_requests_total", **pay, code="ok") == 3
    card = {"mode": "sandbox", "method": "card"}
    assert delta("toffeepay_payments_total", **card, status="processing") == 3
    assert delta("toffeepay_payments_total", **card, status="succeeded") == 2
    assert delta("toffeepay_payments_total", **card, status="failed") == 1
    assert delta("toffeepay_webhook_delivery_duration_seconds_count", mode="sandbox") == ok + failed
    for name in ("toffeepay_outbox_pending_deliveries", "toffeepay_outbox_oldest_pending_seconds"):
        assert (name, (("mode", "sandbox"),)) in after
    assert value(after, "toffeepay_endpoints_disabled", mode="sandbox") >= 0
    # Every metric docs/operations.md lists is exported.
    documented = set(re.findall(r"^\| `(toffeepay_\w+)`", OPERATIONS.read_text(), re.MULTILINE))
    exported = {
        name.removesuffix(suffix)
        for name, _ in after
        for suffix in ("_total", "_count", "_sum", "_bucket", "_created")
        if name.startswith("toffeepay_") and name.endswith(suffix)
    }
    exported |= {name for name, _ in after if name.startswith("toffeepay_")}
    assert documented and documented <= exported, documented - exported
    # No label carries a secret, a key or a player's id.
    labels = " ".join(v for (_name, pairs) in after for _k, v in pairs)
    assert game.sandbox_key not in labels and "player_42" not in labels and created["secret"] not in labels
    receiver.server.shutdown()


def test_outbox_gauges_follow_the_backlog(metered: Server) -> None:
    """A delivery waiting for a retry counts as pending, and its age grows until it is made."""
    url = metered.metrics_url  # type: ignore[attr-defined]
    game = metered.create_game()
    api = metered.api(game.sandbox_key)
    receiver = Receiver()
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/late"), "events": ["session.created"]})
    receiver.expect("/late", created["secret"], Answer(503))
    before = value(scrape(url), "toffeepay_outbox_pending_deliveries", mode="sandbox")
    api.create_session(game.game_id)
    receiver.wait_for("/late", 1)
    deadline = time.monotonic() + 20
    while value(scrape(url), "toffeepay_outbox_pending_deliveries", mode="sandbox") < before + 1:
        assert time.monotonic() < deadline, "the failed delivery never showed as pending"
        time.sleep(0.05)
    assert value(scrape(url), "toffeepay_outbox_oldest_pending_seconds", mode="sandbox") > 0
    receiver.wait_for("/late", 2, timeout=60)  # the retry succeeds
    while value(scrape(url), "toffeepay_outbox_pending_deliveries", mode="sandbox") > before:
        assert time.monotonic() < deadline + 60, "the delivered retry still counts as pending"
        time.sleep(0.05)
    receiver.server.shutdown()


def test_request_ids_in_headers_errors_and_logs(metered: Server) -> None:
    game = metered.create_game()
    api = metered.api(game.sandbox_key)
    ok = api.post("PaymentService/GetSessionStatus", {"id": api.create_session(game.game_id)["id"]})
    assert ok.headers["x-request-id"].startswith("req_")
    refused = api.post("PaymentService/GetSession", {"id": "sess_nope"}, headers={"X-Request-Id": "mine"})
    request_id = refused.headers["x-request-id"]
    assert request_id.startswith("req_") and request_id != ok.headers["x-request-id"]
    info = error_info(refused)
    assert (info.reason, info.domain, info.metadata["request_id"]) == ("not_found", "toffeepay.dev", request_id)
    page = httpx.get(f"{metered.url}/healthz", timeout=10)
    assert page.headers["x-request-id"].startswith("req_")


PS = "/pay.v1.PaymentService"
JSON = {"Content-Type": "application/json"}
HINT = "/pay.v1.PaymentService/"
REFUSALS = [
    ("POST", f"{PS}/CreateSession", {}, 415, "invalid_argument", "unsupported_content_type", "application/json"),
    (
        "POST",
        f"{PS}/CreateSession",
        {"Content-Type": "text/plain"},
        415,
        "invalid_argument",
        "unsupported_",
        "text/plain",
    ),
    ("POST", f"{PS}/CreateSesion", JSON, 404, "unimplemented", "unknown_method", "CreateSession"),
    ("POST", f"{PS}s/CreateSession", JSON, 404, "unimplemented", "unknown_method", "pay.v1.PaymentService"),
    ("GET", f"{PS}/CreateSession", {}, 405, "unimplemented", "method_not_allowed", "POST"),
    ("GET", "/", {}, 404, "unimplemented", "unknown_method", HINT),
    ("GET", "/no/such/page", {}, 404, "not_found", "not_found", HINT),
]


@pytest.mark.parametrize(("method", "path", "headers", "status", "code", "reason", "hint"), REFUSALS)
def test_every_refusal_is_a_connect_error_that_says_what_to_do(
    metered: Server, method: str, path: str, headers: dict[str, str], status: int, code: str, reason: str, hint: str
) -> None:
    game = metered.create_game()
    sent = {"Authorization": f"Bearer {game.sandbox_key}", **headers}
    response = httpx.request(
        method, metered.url + path, headers=sent, content=b'{"x": 1}' if method == "POST" else None
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["code"] == code and error["message"].startswith(reason) and hint in error["message"], error
    info = error_info(response)
    assert (
        error["message"].startswith(f"{info.reason}: ")
        and info.metadata["request_id"] == response.headers["x-request-id"]
    )


def test_a_browser_gets_a_short_page(metered: Server) -> None:
    for path, words in (("/", "ToffeePay server"), ("/sess/x/y", "Nothing is at")):
        page = httpx.get(metered.url + path, headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert words in page.text


@pytest.fixture(params=ENGINES)
def doomed_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_readyz_says_503_once_the_database_is_gone(doomed_db: str, tmp_path: Path) -> None:
    server = Server(doomed_db, tmp_path).start()
    try:
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        if doomed_db.startswith("sqlite"):
            path = Path(doomed_db.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            from tests.conftest import _pg_admin

            _pg_admin(f'DROP DATABASE "{doomed_db.rsplit("/", 1)[1]}" WITH (FORCE)')
        gone = httpx.get(f"{server.url}/readyz", timeout=10)
        assert gone.status_code == 503, gone.text
        assert gone.json()["status"] == "not_ready" and gone.json()["problem"]
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200  # the process is still up
    finally:
        server.stop()


def test_readyz_says_503_when_the_schema_is_behind(metered: Server, tmp_path: Path) -> None:
    from tests.support import sql

    (current,) = sql(metered.db_url, "SELECT version_num FROM alembic_version")
    sql(metered.db_url, "UPDATE alembic_version SET version_num = 'older'")
    try:
        behind = httpx.get(f"{metered.url}/readyz", timeout=10)
        assert behind.status_code == 503 and "older" in behind.json()["problem"], behind.text
    finally:
        sql(metered.db_url, "UPDATE alembic_version SET version_num = :v", {"v": current[0]})
    assert httpx.get(f"{metered.url}/readyz", timeout=10).status_code == 200


def test_logs_are_json_lines_with_the_request_id(metered: Server) -> None:
    """A refusal is logged as one JSON line carrying the id the client was given."""
    game = metered.create_game()
    refused = metered.api(game.sandbox_key).post("PaymentService/GetSession", {"id": "sess_nope"})
    request_id = refused.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in metered.log.read_text().splitlines() if line.startswith("{")]
        mine = [line for line in lines if line.get("request_id") == request_id]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert mine, "no log line names the request"
    assert mine[0]["code"] == "not_found" and mine[0]["method"] == "GetSession" and mine[0]["timestamp"]


def test_the_worker_serves_metrics_for_the_deliveries_it_makes(doomed_db: str, tmp_path: Path) -> None:
    """`toffeepay worker` beside an API-only server: the worker delivers, and its /metrics say so."""
    metrics_port = free_port()
    api_only = Server(
        doomed_db, tmp_path, env={"TOFFEEPAY_BACKGROUND": "0", "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}
    )
    api_only.start()
    worker_env = {**api_only.env, "TOFFEEPAY_BACKGROUND": "1", "TOFFEEPAY_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", "worker"], env=worker_env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    receiver = Receiver()
    try:
        game = api_only.create_game()
        api = api_only.api(game.sandbox_key)
        created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/w"), "events": ["session.created"]})
        receiver.expect("/w", created["secret"])
        for _ in range(2):
            api.create_session(game.game_id)
        receiver.wait_for("/w", 2, timeout=60)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            try:
                delivered = value(
                    scrape(url), "toffeepay_webhook_deliveries_total", mode="sandbox", outcome="succeeded"
                )
            except httpx.HTTPError:
                delivered = -1
            if delivered == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert delivered == 2
        assert ("toffeepay_outbox_pending_deliveries", (("mode", "sandbox"),)) in scrape(url)
    finally:
        receiver.server.shutdown()
        worker.terminate()
        worker.wait(30)
        api_only.stop()
