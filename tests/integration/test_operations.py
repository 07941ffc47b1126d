"""Running it: migrations from empty on both engines, health, graceful shutdown."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from alembic.script import ScriptDirectory

from tests.conftest import ENGINES, make_database
from tests.support import Server, sql
from toffeepay_server.store.migrate import alembic_config


@pytest.fixture(params=ENGINES)
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_migrate_from_empty_and_again(empty_db: str, tmp_path) -> None:
    server = Server(empty_db, tmp_path)
    first = server.cli("migrate")
    assert "up to date" in first.stdout
    server.cli("migrate")  # a second run changes nothing
    head = ScriptDirectory.from_config(alembic_config(empty_db)).get_current_head()
    assert sql(empty_db, "SELECT version_num FROM alembic_version") == [(head,)]
    for table in (
        "games",
        "api_keys",
        "sessions",
        "payments",
        "disputes",
        "refunds",
        "events",
        "webhook_endpoints",
        "deliveries",
        "delivery_attempts",
        "idempotency_keys",
        "users",
        "memberships",
        "dashboard_sessions",
        "audit_log",
    ):
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
    limited = Server(
        server.db_url, tmp_path, env={"TOFFEEPAY_RATE_LIMIT": "5/minute", "TOFFEEPAY_BACKGROUND": "0"}
    ).start()
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


def test_worker_alone_records_expiry(empty_db: str, tmp_path) -> None:
    """`toffeepay worker` does the background work for an API process that runs none."""
    import subprocess
    import sys

    from tests.support import lapse, outbox

    api_only = Server(empty_db, tmp_path, env={"TOFFEEPAY_BACKGROUND": "0"}).start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", "worker"],
        env=api_only.env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        game = api_only.create_game()
        created = api_only.api(game.sandbox_key).create_session(game.game_id)
        lapse(empty_db, created["id"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(outbox(empty_db, created["id"])) < 2:
            time.sleep(0.1)
        assert [e["event"] for e in outbox(empty_db, created["id"])] == ["session.created", "session.expired"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        api_only.stop()


def test_sandbox_game_banner_prints_a_working_command(empty_db: str, tmp_path) -> None:
    """What `make run` prints: the sandbox key and a CreateSession command that works as pasted."""
    import json
    import re
    import subprocess
    import sys

    server = Server(empty_db, tmp_path)
    log = server.log.open("wb")
    server.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toffeepay_server",
            "serve",
            "--port",
            str(server.port),
            "--sandbox-game",
            "space_shooter",
        ],
        env=server.env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            output = server.log.read_text()
            if "curl -s" in output and "Listening" in output:
                break
            time.sleep(0.2)
        key = re.search(r"sk_test_[A-Za-z0-9_-]+", output).group(0)
        command = output[output.index("curl -s") :].split("\n\n")[0]
        for _ in range(50):
            result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
            if result.stdout:
                break
            time.sleep(0.2)
        created = json.loads(result.stdout)
        assert created["id"].startswith("sess_")
        assert server.api(key).ok("PaymentService/GetSession", {"id": created["id"]})["game_id"] == "space_shooter"
        # The first operator account, printed beside the key, signs in to the dashboard.
        email, password = re.search(r"email (\S+)\s+password (\S+)", output).groups()
        dashboard = httpx.Client(base_url=server.url)
        form = dashboard.get("/dashboard/sign-in")
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text).group(1)
        signed_in = dashboard.post(
            "/dashboard/sign-in", data={"csrf_token": token, "email": email, "password": password}
        )
        assert signed_in.status_code == 303
        assert dashboard.get("/dashboard/space_shooter/sandbox/").status_code == 200
    finally:
        server.stop()
    # A second start reuses the saved key.
    second = subprocess.run(
        [
            sys.executable,
            "-c",
            "from toffeepay_server.cli import _dev_sandbox_key, _run; from toffeepay_server.config import Settings; "
            "print(_run(Settings.from_env(), lambda c: _dev_sandbox_key(c, 'space_shooter')))",
        ],
        env=server.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.stdout.strip() == key
