"""The TypeScript and Go SDKs' own test suites against a real `toffeepay serve`, on each engine.

The suites read the server and a fresh game's keys from TOFFEEPAY_TEST_* variables; they also
run the shared verification vectors of sdk/testdata. `make sdk-deps` installs the toolchains.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ENGINES, make_database
from tests.support import Server

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
