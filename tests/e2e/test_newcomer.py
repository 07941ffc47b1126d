"""What a newcomer meets following the README: the quickstart game server against every `trigger`,
`listen` explaining a refused key and resending what the game server did not take, the CLI's
help, version and typed SDK errors from a real server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import toffeepay

from tests.e2e.test_cli_dev import Receiver
from tests.support import Game, Server, free_port, sql
from toffeepay_server.domain.events import SESSION_EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "sdk/python/examples/game_server.py"


def _space_shooter_key(server: Server) -> str:
    """A sandbox key of `space_shooter`, the game the quickstart sells for (registered once per database)."""
    if "space_shooter" not in json.loads(server.cli("games", "list", "--json").stdout):
        return server.create_game("space_shooter").sandbox_key
    return json.loads(server.cli("keys", "roll", "space_shooter", "--json").stdout)["api_key"]


def test_the_quickstart_game_server_survives_every_trigger(server: Server, tmp_path: Path) -> None:
    key = _space_shooter_key(server)
    port = free_port()
    api = server.api(key)
    created = api.ok("WebhookService/CreateEndpoint", {"url": f"http://127.0.0.1:{port}/webhooks"})
    endpoint_id = created["endpoint"]["id"]
    env = {
        **server.env,
        "TOFFEEPAY_API_KEY": key,
        "TOFFEEPAY_WEBHOOK_SECRET": created["secret"],
        "TOFFEEPAY_URL": server.url,
        "PORT": str(port),
    }
    out, errors = (tmp_path / "game.out").open("w+"), (tmp_path / "game.err").open("w+")
    game = subprocess.Popen([sys.executable, str(QUICKSTART)], env=env, cwd=tmp_path, stdout=out, stderr=errors)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert game.poll() is None and time.monotonic() < deadline, Path(errors.name).read_text()
                time.sleep(0.1)
        triggered = 0
        for event in SESSION_EVENT_TYPES:  # every event `trigger` can make
            result = server.cli("trigger", event, "--game", "space_shooter", "--api-url", server.url, "--json")
            triggered += bool(json.loads(result.stdout)["events"])
        assert triggered >= 9
        # A real purchase on top: bought through the game server, paid in the sandbox, granted.
        bought = httpx.post(f"http://127.0.0.1:{port}/buy", json={"user_id": "player_42", "sku": "gold_50"}, timeout=10)
        assert bought.status_code == 200, bought.text
        session_id = bought.json()["session_id"]
        api.ok("SandboxService/PaySession", {"session_id": session_id})

        def settled() -> list[Any]:
            return sql(server.db_url, "SELECT status FROM deliveries WHERE endpoint_id = :e", {"e": endpoint_id})

        while "granted 50 Gold Coins to player_42" not in Path(out.name).read_text() or any(
            status != "succeeded" for (status,) in settled()
        ):
            assert time.monotonic() < deadline + 60, (settled(), Path(errors.name).read_text()[-3000:])
            time.sleep(0.1)
        assert game.poll() is None, "the game server died"
        assert "Traceback" not in Path(errors.name).read_text(), Path(errors.name).read_text()[-3000:]
        assert "nothing to grant" in Path(out.name).read_text()  # the triggered sessions, acknowledged
        assert httpx.get(f"http://127.0.0.1:{port}/status?session_id={session_id}", timeout=10).json() == {
            "status": "paid"
        }
    finally:
        game.terminate()
        game.wait(10)


def _listen(server: Server, game: Game, forward_to: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", "listen", "--game", game.game_id, "--forward-to", forward_to,
         "--api-url", server.url, "--interval", "0.2", "--json", *extra],
        env=env or server.env, cwd=server.workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_listen_tells_another_database_apart_from_a_bad_key(server: Server, game: Game, tmp_path: Path) -> None:
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    other = {**server.env, "TOFFEEPAY_DATABASE_URL": other_db}
    subprocess.run(
        [sys.executable, "-m", "toffeepay_server", "games", "create", game.game_id],
        env=other, cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    mismatch = _listen(server, game, "http://127.0.0.1:9/webhooks", env=other)
    _out, said = mismatch.communicate(timeout=60)
    assert mismatch.returncode == 1
    assert "does not use the database here" in said and "other.db" in said, said

    bad_key = _listen(server, game, "http://127.0.0.1:9/webhooks", "--api-key", "sk_test_not_a_key")
    _out, said = bad_key.communicate(timeout=60)
    assert bad_key.returncode == 1
    assert "refused --api-key" in said and "database" not in said, said


def test_listen_resends_what_the_game_server_did_not_take(server: Server, game: Game) -> None:
    answers = iter([500])
    with Receiver(lambda _event: next(answers, 200)) as receiver:
        listen = _listen(server, game, receiver.url, "--events", "session.created")
        try:
            ready = json.loads(listen.stdout.readline())
            assert ready["ready"] is True
            session = server.api(game.sandbox_key).create_session(game.game_id)
            refused = json.loads(listen.stdout.readline())
            assert (refused["event"], refused["status"], refused["resent"]) == ("session.created", 500, False)
            listen.stdin.write("\n")  # "press Enter to resend"
            listen.stdin.flush()
            resent = json.loads(listen.stdout.readline())
            assert (resent["event_id"], resent["status"], resent["resent"]) == (refused["event_id"], 200, True)
            bodies = [json.loads(body) for _headers, body in receiver.received]
            assert [b["data"]["session_id"] for b in bodies] == [session["id"], session["id"]]
        finally:
            listen.terminate()
            try:
                listen.wait(30)
            except subprocess.TimeoutExpired:  # seen once under load: what this test checks was done
                listen.kill()
                listen.wait(10)


def test_version_and_help_name_what_a_newcomer_needs(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "toffeepay_server", *args], capture_output=True, text=True, cwd=tmp_path, check=True
        )
        return done.stdout

    assert run("--version").startswith(f"toffeepay {toffeepay.__version__}")
    serve_help = " ".join(run("serve", "--help").split())
    assert "TOFFEEPAY_DATABASE_URL" in serve_help and "sqlite:///toffeepay.db" in serve_help
    assert "toffeepay.db in the current directory" in serve_help
    # --help loads no database, server or SDK transport code: that is what keeps it quick.
    code = (
        "import sys, runpy\n"
        "sys.argv = ['toffeepay', '--help']\n"
        "try:\n    runpy.run_module('toffeepay_server', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = {'sqlalchemy', 'alembic', 'connectrpc', 'pyqwest', 'httpx', 'granian', 'starlette'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), file=sys.stderr)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "Usage" in shown.stdout and shown.stderr.strip().splitlines()[-1] == "[]", shown.stderr


def test_sdk_errors_carry_the_reason_and_request_id_from_error_info(server: Server, game: Game) -> None:
    with toffeepay.ToffeePay(game.sandbox_key, base_url=server.url, max_retries=0) as client:
        with pytest.raises(toffeepay.NotFoundError) as missing:
            client.sessions.get("sess_00000000000000000000000000")
        with pytest.raises(toffeepay.InvalidRequestError) as currency:
            client.sessions.create(
                game_id=game.game_id, user_id="p", item={"title": "x", "price": 100, "currency": "XYZ"}
            )
    assert missing.value.reason == "not_found" and missing.value.request_id.startswith("req_")
    assert currency.value.reason == "invalid_currency" and not currency.value.message.startswith("invalid_currency")
