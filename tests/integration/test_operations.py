"""Running it: migrations from empty on both engines, health, graceful shutdown."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ENGINES, make_database
from tests.support import Server, sql


@pytest.fixture(params=ENGINES)
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_migrate_from_empty_and_again(empty_db: str, tmp_path) -> None:
    server = Server(empty_db, tmp_path)
    first = server.cli("migrate")
    assert "up to date" in first.stdout
    server.cli("migrate")  # a second run changes nothing
    assert sql(empty_db, "SELECT version_num FROM alembic_version") == [("0001",)]
    for table in ("games", "api_keys", "sessions", "payments", "disputes", "events", "webhook_endpoints",
                  "deliveries", "delivery_attempts", "idempotency_keys"):
        assert sql(empty_db, f"SELECT COUNT(*) FROM {table}") == [(0,)]


def test_serve_migrates_on_start_and_shuts_down_gracefully(empty_db: str, tmp_path) -> None:
    server = Server(empty_db, tmp_path).start()
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    check = httpx.post(f"{server.url}/pay.v1.HealthService/Check", json={})
    assert check.json() == {"status": "serving"}
    game = server.create_game()
    server.api(game.sandbox_key).create_session(game.game_id)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert server.proc.wait(30) == 0
    assert time.monotonic() - started < 30


def test_rate_limited_per_key(server: Server, tmp_path) -> None:
    limited = Server(server.db_url, tmp_path, env={"TOFFEEPAY_RATE_LIMIT": "5/minute", "TOFFEEPAY_BACKGROUND": "0"}).start()
    try:
        game, other = limited.create_game(), limited.create_game()
        api = limited.api(game.sandbox_key)
        for _ in range(5):
            api.ok("PaymentService/ListSessions", {})
        response = api.post("PaymentService/ListSessions", {})
        assert response.status_code == 429
        assert response.json()["code"] == "resource_exhausted"
        assert response.json()["message"].startswith("rate_limited: ")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        limited.api(other.sandbox_key).ok("PaymentService/ListSessions", {})  # other keys are unaffected
    finally:
        limited.stop()
