"""Secrets at rest: webhook secrets, the page's CSRF key and stored answers are never in clear."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command

from tests.conftest import ENGINES, make_database
from tests.receiver import Receiver
from tests.support import Server, run_async, sql
from toffeepay_server.api.gateway import request_fingerprint
from toffeepay_server.store.migrate import alembic_config

LOOPBACK = {"TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}
CREATE_ENDPOINT = "/pay.v1.WebhookService/CreateEndpoint"


@pytest.fixture(params=ENGINES)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def raw_database(db_url: str) -> bytes:
    """Everything the database holds, as stored: the file bytes on SQLite, every row on PostgreSQL."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    from sqlalchemy import text

    from toffeepay_server.store.database import Database

    async def dump() -> bytes:
        db = Database(db_url, pool_size=1)
        try:
            async with db.writer.connect() as conn:
                names = (
                    await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
                ).scalars()
                out = []
                for name in list(names):
                    for row in await conn.execute(text(f'SELECT * FROM "{name}"')):
                        out.append(repr(tuple(row)).encode())
                return b"\n".join(out)
        finally:
            await db.dispose()

    return run_async(dump)


def _cli(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toffeepay_server", *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _default_key_env() -> dict[str, str]:
    """The server's own default: a key file `toffeepay.key` in its working directory."""
    return {**LOOPBACK, "TOFFEEPAY_KEY_FILE": "", "TOFFEEPAY_SECRET_KEY": ""}


def test_no_secret_is_stored_or_logged_in_clear(fresh_db: str, tmp_path: Path, receiver: Receiver) -> None:
    srv = Server(fresh_db, tmp_path, env=_default_key_env()).start()
    try:
        key_file = tmp_path / "toffeepay.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        if fresh_db.startswith("sqlite"):
            db_file = Path(fresh_db.split("///", 1)[1])
            assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
        game = srv.create_game()
        api = srv.api(game.sandbox_key)
        body = {"url": receiver.url("/hooks")}
        once = {"Idempotency-Key": f"ep-{uuid.uuid4()}"}
        created = api.post("WebhookService/CreateEndpoint", body, headers=once)
        replayed = api.post("WebhookService/CreateEndpoint", body, headers=once)
        assert created.status_code == replayed.status_code == 200, created.text
        assert replayed.content == created.content and replayed.headers["idempotent-replayed"] == "true"
        endpoint, first_secret = created.json()["endpoint"], created.json()["secret"]
        legacy = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/legacy"), "format": "legacy_form"})
        rotate = {"Idempotency-Key": f"rot-{uuid.uuid4()}"}
        rotated = api.post("WebhookService/RotateSecret", {"id": endpoint["id"]}, headers=rotate)
        again = api.post("WebhookService/RotateSecret", {"id": endpoint["id"]}, headers=rotate)
        assert rotated.status_code == 200 and again.content == rotated.content
        new_secret = rotated.json()["secret"]
        secrets = [first_secret, new_secret, legacy["secret"]]
        receiver.expect("/hooks", [new_secret, first_secret])
        receiver.expect("/legacy", legacy["secret"])

        session = api.create_session(game.game_id)
        api.ok("SandboxService/PaySession", {"session_id": session["id"], "outcome": "succeeded"})
        page = httpx.get(api.create_session(game.game_id)["url"])
        assert page.status_code == 200 and "csrf_token" in page.text  # the page's CSRF key is made and kept
        got = receiver.wait_for("/hooks", 5)
        assert all(r.error is None for r in got), receiver.summary()
        assert receiver.wait_for("/legacy", 1)[0].error is None

        stored = raw_database(fresh_db)
        assert b"whsec_" not in stored
        for secret in secrets:
            assert secret.split("_", 1)[1].encode() not in stored
        values = sql(fresh_db, "SELECT name, value FROM installation_secrets")
        assert {name for name, _ in values} >= {"checkout", "key_check"}
        assert all(value.startswith("aesgcm1:") for _, value in values)
        bodies = sql(fresh_db, "SELECT response_body FROM idempotency_keys WHERE response_body IS NOT NULL")
        assert len(bodies) >= 2 and all(bytes(b).startswith(b"aesgcm1:") for (b,) in bodies)

        # The same installation restarted reads its secrets back: deliveries still verify.
        srv.stop()
        srv.start()
        api.create_session(game.game_id)
        later = receiver.wait_for("/hooks", 6)
        assert all(r.error is None for r in later), receiver.summary()
        log = srv.log.read_text()
        assert "whsec_" not in log and not any(s.split("_", 1)[1] in log for s in secrets)
    finally:
        srv.stop()

    # Another key does not open them: the server refuses to start, and says why.
    wrong = _cli(tmp_path, {**srv.env, "TOFFEEPAY_SECRET_KEY": "not-the-key"}, "serve", "--port", "1")
    assert wrong.returncode == 1
    assert "installation key" in wrong.stderr and "docs/secrets.md" in wrong.stderr
    key_file.rename(tmp_path / "lost.key")
    lost = _cli(tmp_path, srv.env, "migrate")
    assert lost.returncode == 1 and "installation key" in lost.stderr


def test_secret_key_setting_needs_no_key_file(fresh_db: str, tmp_path: Path, receiver: Receiver) -> None:
    env = {**LOOPBACK, "TOFFEEPAY_KEY_FILE": "", "TOFFEEPAY_SECRET_KEY": f"operator-{uuid.uuid4().hex}"}
    srv = Server(fresh_db, tmp_path, env=env).start()
    try:
        game = srv.create_game()
        api = srv.api(game.sandbox_key)
        created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/hooks")})
        receiver.expect("/hooks", created["secret"])
        api.create_session(game.game_id)
        assert receiver.wait_for("/hooks", 1)[0].error is None
        assert b"whsec_" not in raw_database(fresh_db)
        assert not (tmp_path / "toffeepay.key").exists()
    finally:
        srv.stop()


def test_clear_secrets_of_an_older_database_are_sealed_by_the_upgrade(
    fresh_db: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A database of the first schema, secrets in clear, upgraded: sealed, and they still verify."""
    command.upgrade(alembic_config(fresh_db), "0001")
    sandbox_key = f"sk_test_{uuid.uuid4().hex}"
    secret = "whsec_" + base64.b64encode(b"old-secret-stored-in-clear-0123!").decode()
    micros = 1_780_000_000_000_000
    game_id = f"old_{uuid.uuid4().hex[:8]}"
    sql(fresh_db, "INSERT INTO games (game_id, created_at) VALUES (:g, :t)", {"g": game_id, "t": micros})
    sql(
        fresh_db,
        "INSERT INTO api_keys (id, game_id, mode, key_hash, display_prefix, created_at) "
        "VALUES ('key_old', :g, 'sandbox', :h, 'sk_test_old', :t)",
        {"g": game_id, "h": hashlib.sha256(sandbox_key.encode()).hexdigest(), "t": micros},
    )
    sql(
        fresh_db,
        "INSERT INTO webhook_endpoints (id, game_id, mode, url, format, events, enabled, description, secret, "
        "created_at) VALUES ('we_old', :g, 'sandbox', :u, 'json', '[]', :on, NULL, :s, :t)",
        {"g": game_id, "u": receiver.url("/hooks"), "on": True, "s": secret, "t": micros},
    )
    sql(
        fresh_db,
        "INSERT INTO installation_secrets (name, value, created_at) VALUES ('checkout', :v, :t)",
        {"v": "clear-csrf-secret-of-the-old-version", "t": micros},
    )
    # A CreateEndpoint answer stored by the old version, the secret inside in clear.
    request = json.dumps({"url": "https://hooks.example.com/x"}).encode()
    answer = json.dumps({"endpoint": {"id": "we_x"}, "secret": secret}).encode()
    sql(
        fresh_db,
        "INSERT INTO idempotency_keys (api_key_id, key, request_hash, state, locked_until, response_status, "
        "response_headers, response_body, created_at) VALUES ('key_old', 'old-answer', :h, 'done', :t, 200, "
        '\'[["content-type","application/json"]]\', :b, :t)',
        {"h": request_fingerprint(CREATE_ENDPOINT, "application/json", request), "t": micros * 2, "b": answer},
    )
    assert b"whsec_" in raw_database(fresh_db)

    srv = Server(fresh_db, tmp_path, env=_default_key_env()).start()  # migrates on start
    try:
        assert b"whsec_" not in raw_database(fresh_db)
        receiver.expect("/hooks", secret)
        api = srv.api(sandbox_key)
        session = api.create_session(game_id)
        (got,) = receiver.wait_for("/hooks", 1)
        assert got.error is None and got.event["data"]["session_id"] == session["id"], receiver.summary()
        replay = api.post("WebhookService/CreateEndpoint", content=request, headers={"Idempotency-Key": "old-answer"})
        assert replay.status_code == 200 and replay.content == answer
        assert httpx.get(session["url"]).status_code == 200  # the old CSRF key opens too
    finally:
        srv.stop()
