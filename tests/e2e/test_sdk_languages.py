"""The TypeScript and Go SDKs' own test suites against a real `toffeepay serve`, on each engine.

The suites read the server and a fresh game's keys from TOFFEEPAY_TEST_* variables; they also
run the shared verification vectors of sdk/testdata. The complete game servers printed in
docs/sdk-typescript.md and docs/sdk-go.md run here too, as printed but for their addresses, and
one rate-limit scenario runs in the Python, TypeScript and Go SDKs alike against a server that
refuses a key's second request within a second. `make sdk-deps` installs the toolchains.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENGINES, make_database
from tests.support import Game, Server, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=ENGINES)
def sdk_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the suites' webhook receivers listen on loopback."""
    tmp = tmp_path_factory.mktemp(f"sdk-{request.param}")
    databases = make_database(request.param, tmp)
    srv = Server(next(databases), tmp, env={"TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"})
    yield srv.start()
    srv.stop()
    next(databases, None)


def run_suite(server: Server, command: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> None:
    game = server.create_game()
    env = {
        **os.environ,
        **(extra_env or {}),
        "TOFFEEPAY_TEST_BASE_URL": server.url,
        "TOFFEEPAY_TEST_GAME_ID": game.game_id,
        "TOFFEEPAY_TEST_SANDBOX_KEY": game.sandbox_key,
        "TOFFEEPAY_TEST_LIVE_KEY": game.live_key,
    }
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    # Every test ran against the server (none skipped for want of it).
    assert "# SKIP" not in result.stdout and "--- SKIP" not in result.stdout, result.stdout[-4000:]


def test_typescript_sdk(sdk_server: Server) -> None:
    sdk = ROOT / "sdk" / "typescript"
    assert (sdk / "node_modules").is_dir(), "run `make sdk-deps` (npm ci) first"
    run_suite(sdk_server, ["npm", "test", "--silent"], sdk)


def test_go_sdk(sdk_server: Server) -> None:
    go = shutil.which("go") or "/usr/lib/go/bin/go"
    assert Path(go).exists(), "run `make sdk-deps` (installs Go) first"
    # Standard library only: nothing may be downloaded.
    run_suite(
        sdk_server,
        [go, "test", "-count=1", "-v", "./..."],
        ROOT / "sdk" / "go",
        {"GOPROXY": "off", "GOFLAGS": "-mod=readonly"},
    )


def doc_block(doc: str, fence: str, start: str) -> str:
    """The code block of a doc that starts with `start`, as printed."""
    blocks = re.findall(rf"```{fence}\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)
    [code] = [b for b in blocks if b.startswith(start)]
    return code


@pytest.fixture(scope="module")
def space_shooter(sdk_server: Server) -> Game:
    """The docs' game."""
    return sdk_server.create_game("space_shooter")


def sell_and_grant(server: Server, game: Game, command: list[str], cwd: Path, port: int) -> None:
    """Run a documented game server: buy through it, pay, and wait for it to grant and fulfil."""
    api = server.api(game.sandbox_key)
    endpoint = api.ok(
        "WebhookService/CreateEndpoint", {"url": f"http://127.0.0.1:{port}/webhooks", "events": ["session.paid"]}
    )
    env = {**os.environ, "TOFFEEPAY_API_KEY": game.sandbox_key, "TOFFEEPAY_WEBHOOK_SECRET": endpoint["secret"]}
    game_server = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                bought = httpx.post(f"http://127.0.0.1:{port}/buy", json={"user_id": "player_42"}, timeout=10)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or game_server.poll() is not None:
                    raise
                time.sleep(0.1)
        assert bought.status_code == 200, bought.text
        session_id = bought.json()["session_id"]
        assert bought.json()["payment_url"] == f"{server.url}/{session_id}"
        api.ok("SandboxService/PaySession", {"session_id": session_id})
        # The signed session.paid reaches the game server, which grants and then fulfils.
        deadline = time.monotonic() + 30
        while "fulfilled_at" not in (session := api.ok("PaymentService/GetSession", {"id": session_id})):
            if time.monotonic() > deadline or game_server.poll() is not None:
                pytest.fail(f"not fulfilled: {session}")
            time.sleep(0.1)
        # A forged webhook is refused.
        forged = httpx.post(
            f"http://127.0.0.1:{port}/webhooks", content=b"{}", headers={"X-ToffeePay-Signature": "t=1,v1=00"}
        )
        assert forged.status_code == 400
    finally:
        game_server.terminate()
        output, _ = game_server.communicate(timeout=10)
        api.ok("WebhookService/DeleteEndpoint", {"id": endpoint["endpoint"]["id"]})
    assert output.count(f"granted 50 Gold Coins to player_42 (session {session_id})") == 1, output


def test_the_typescript_doc_game_server(sdk_server: Server, space_shooter: Game, tmp_path: Path) -> None:
    sdk = ROOT / "sdk" / "typescript"
    subprocess.run(["npm", "run", "build", "--silent"], cwd=sdk, check=True, timeout=300)
    code = doc_block("sdk-typescript.md", "js", 'import { createServer } from "node:http";')
    port = free_port()
    code = code.replace("http://127.0.0.1:8000", sdk_server.url).replace(
        'listen(3000, "127.0.0.1")', f'listen({port}, "127.0.0.1")'
    )
    (tmp_path / "game_server.mjs").write_text(code)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "node_modules" / "@toffeepay").mkdir(parents=True)
    (tmp_path / "node_modules" / "@toffeepay" / "sdk").symlink_to(sdk)
    sell_and_grant(sdk_server, space_shooter, ["node", "game_server.mjs"], tmp_path, port)


def test_the_go_doc_game_server(sdk_server: Server, space_shooter: Game, tmp_path: Path) -> None:
    go = shutil.which("go") or "/usr/lib/go/bin/go"
    code = doc_block("sdk-go.md", "go", "package main")
    port = free_port()
    code = code.replace("http://127.0.0.1:8000", sdk_server.url).replace('"127.0.0.1:3000"', f'"127.0.0.1:{port}"')
    (tmp_path / "main.go").write_text(code)
    (tmp_path / "go.mod").write_text(
        f"module example.com/game\n\ngo 1.19\n\nrequire toffeepay.dev/sdk/go v0.0.0\n\n"
        f"replace toffeepay.dev/sdk/go => {ROOT / 'sdk' / 'go'}\n"
    )
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    subprocess.run([go, "build", "-o", "game", "."], cwd=tmp_path, env=env, check=True, timeout=300)
    sell_and_grant(sdk_server, space_shooter, [str(tmp_path / "game")], tmp_path, port)


# The same rate-limit scenario in each SDK, against a server that allows one request per second
# per key: a call, at once another (refused 429 rate_limited with Retry-After: 1, then retried
# after that second and answered), at once a third from a client without retries (refused, the
# error surfaced). Each prints {"retried_ms", "code", "reason"}.
RATE_LIMIT_SCENARIOS = {
    "python": (
        "script.py",
        """
import json, os, sys, time
import toffeepay
key, url = os.environ["TOFFEEPAY_API_KEY"], os.environ["TOFFEEPAY_BASE_URL"]
client = toffeepay.ToffeePay(key, base_url=url)
client.sessions.list(limit=1)
started = time.monotonic()
client.sessions.list(limit=1)
retried_ms = (time.monotonic() - started) * 1000
try:
    toffeepay.ToffeePay(key, base_url=url, max_retries=0).sessions.list(limit=1)
    sys.exit("the third call was not refused")
except toffeepay.RateLimitError as e:
    print(json.dumps({"retried_ms": retried_ms, "code": e.code, "reason": e.reason}))
""",
    ),
    "typescript": (
        "script.mjs",
        """
import { RateLimitError, ToffeePay } from "@toffeepay/sdk";
const [key, baseUrl] = [process.env.TOFFEEPAY_API_KEY, process.env.TOFFEEPAY_BASE_URL];
const client = new ToffeePay(key, { baseUrl });
await client.sessions.list({ limit: 1 });
const started = performance.now();
await client.sessions.list({ limit: 1 });
const retriedMs = performance.now() - started;
try {
  await new ToffeePay(key, { baseUrl, maxRetries: 0 }).sessions.list({ limit: 1 });
  throw new Error("the third call was not refused");
} catch (e) {
  if (!(e instanceof RateLimitError)) throw e;
  console.log(JSON.stringify({ retried_ms: retriedMs, code: e.code, reason: e.reason }));
}
""",
    ),
    "go": (
        "main.go",
        """package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	toffeepay "toffeepay.dev/sdk/go"
)

func main() {
	key, url, ctx := os.Getenv("TOFFEEPAY_API_KEY"), os.Getenv("TOFFEEPAY_BASE_URL"), context.Background()
	client := toffeepay.NewClient(key, toffeepay.WithBaseURL(url))
	if _, err := client.Sessions.List(ctx, &toffeepay.ListSessionsRequest{Limit: 1}); err != nil {
		log.Fatal(err)
	}
	started := time.Now()
	if _, err := client.Sessions.List(ctx, &toffeepay.ListSessionsRequest{Limit: 1}); err != nil {
		log.Fatal(err)
	}
	retried := time.Since(started)
	once := toffeepay.NewClient(key, toffeepay.WithBaseURL(url), toffeepay.WithMaxRetries(0))
	_, err := once.Sessions.List(ctx, &toffeepay.ListSessionsRequest{Limit: 1})
	var e *toffeepay.Error
	if !errors.As(err, &e) {
		log.Fatalf("the third call was not refused: %v", err)
	}
	out, _ := json.Marshal(map[string]any{"retried_ms": float64(retried) / 1e6, "code": e.Code, "reason": e.Reason})
	fmt.Println(string(out))
}
""",
    ),
}


@pytest.fixture(scope="module")
def rate_limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server allowing one request per second per key (counted in memory: the engine does not matter)."""
    tmp = tmp_path_factory.mktemp("sdk-rate-limit")
    databases = make_database("sqlite", tmp)
    srv = Server(next(databases), tmp, env={"TOFFEEPAY_RATE_LIMIT": "1/second"})
    yield srv.start()
    srv.stop()
    next(databases, None)


@pytest.mark.parametrize("language", RATE_LIMIT_SCENARIOS)
def test_each_sdk_waits_out_a_rate_limit(rate_limited_server: Server, language: str, tmp_path: Path) -> None:
    name, code = RATE_LIMIT_SCENARIOS[language]
    (tmp_path / name).write_text(code.lstrip())
    env = {**os.environ, "TOFFEEPAY_BASE_URL": rate_limited_server.url}
    if language == "python":
        command = [sys.executable, name]
    elif language == "typescript":
        sdk = ROOT / "sdk" / "typescript"
        subprocess.run(["npm", "run", "build", "--silent"], cwd=sdk, check=True, timeout=300)
        (tmp_path / "package.json").write_text('{"type": "module"}')
        (tmp_path / "node_modules" / "@toffeepay").mkdir(parents=True)
        (tmp_path / "node_modules" / "@toffeepay" / "sdk").symlink_to(sdk)
        command = ["node", name]
    else:
        go = shutil.which("go") or "/usr/lib/go/bin/go"
        (tmp_path / "go.mod").write_text(
            f"module example.com/ratelimit\n\ngo 1.19\n\nrequire toffeepay.dev/sdk/go v0.0.0\n\n"
            f"replace toffeepay.dev/sdk/go => {ROOT / 'sdk' / 'go'}\n"
        )
        go_env = {**env, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
        subprocess.run([go, "build", "-o", "scenario", "."], cwd=tmp_path, env=go_env, check=True, timeout=300)
        command = [str(tmp_path / "scenario")]
    # A key of its own, so its count starts at zero.
    env["TOFFEEPAY_API_KEY"] = rate_limited_server.create_game().sandbox_key
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{language}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # The second call was refused, waited out the server's Retry-After of 1 s, and was answered.
    assert 900 <= outcome["retried_ms"] < 5000, outcome
    # Without retries, the refusal is the error, with its reason.
    assert (outcome["code"], outcome["reason"]) == ("resource_exhausted", "rate_limited"), outcome
