"""The README's Python game server, run as printed (its address and ToffeePay's from the
environment): it sells, grants on `session.paid`, then fulfils, so the session ends up fulfilled."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import Server, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
GAME_ID = "space_shooter"  # the README's game


def readme_game_server() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [code] = [b for b in blocks if b.startswith('"""A game server that sells 50 Gold Coins')]
    return code


def test_the_readme_game_server_grants_then_fulfils(server: Server, tmp_path: Path) -> None:
    code = readme_game_server()
    assert "client.sessions.fulfill(session_id)" in code
    port = free_port()
    (tmp_path / "game_server.py").write_text(code)

    if GAME_ID in json.loads(server.cli("games", "list", "--json").stdout):
        game_key = json.loads(server.cli("keys", "roll", GAME_ID, "--mode", "sandbox", "--json").stdout)["api_key"]
    else:
        game_key = server.create_game(GAME_ID).sandbox_key
    api = server.api(game_key)
    endpoint = api.ok(
        "WebhookService/CreateEndpoint", {"url": f"http://127.0.0.1:{port}/webhooks", "events": ["session.paid"]}
    )
    env = {
        **os.environ,
        "TOFFEEPAY_API_KEY": game_key,
        "TOFFEEPAY_WEBHOOK_SECRET": endpoint["secret"],
        "TOFFEEPAY_URL": server.url,
        "PORT": str(port),
    }
    game_server = subprocess.Popen(
        [sys.executable, str(tmp_path / "game_server.py")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        bought = None
        deadline = time.monotonic() + 30
        while bought is None:
            try:
                bought = httpx.post(f"http://127.0.0.1:{port}/buy", json={"user_id": "player_42", "sku": "gold_50"})
            except httpx.TransportError:
                if game_server.poll() is not None:
                    pytest.fail(f"the game server exited: {game_server.communicate()[0]}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert bought.status_code == 200, bought.text
        session_id = bought.json()["session_id"]
        assert "fulfilled_at" not in api.ok("PaymentService/GetSession", {"id": session_id})

        api.ok("SandboxService/PaySession", {"session_id": session_id})
        # The webhook reaches the game server, which grants and then fulfils.
        deadline = time.monotonic() + 30
        while "fulfilled_at" not in (session := api.ok("PaymentService/GetSession", {"id": session_id})):
            if time.monotonic() > deadline or game_server.poll() is not None:
                pytest.fail(f"not fulfilled: {session}")
            time.sleep(0.1)
        # The player comes back and the game asks: granted once, the same fulfilment.
        status = httpx.get(f"http://127.0.0.1:{port}/status?session_id={session_id}")
        assert status.json() == {"status": "paid"}
        assert api.ok("PaymentService/GetSession", {"id": session_id})["fulfilled_at"] == session["fulfilled_at"]
    finally:
        game_server.terminate()
        output, _ = game_server.communicate(timeout=10)
    assert output.count(f"granted 50 Gold Coins to player_42 (session {session_id})") == 1
