"""Test helpers: a real server on a port, games registered in its database, a JSON API client."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop's thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real, valid PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x80\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def png_data_url() -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


@dataclass
class Game:
    game_id: str
    sandbox_key: str
    live_key: str


@dataclass
class Api:
    """Plain JSON over HTTP, exactly as the guides show it."""

    base_url: str
    key: str | None
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def post(
        self,
        rpc: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        key: str | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """POST /pay.v1.<rpc> (rpc like "PaymentService/CreateSession")."""
        sent = {"Content-Type": "application/json"}
        use_key = key if key is not None else self.key
        if use_key is not None:
            sent["Authorization"] = f"Bearer {use_key}"
        sent.update(headers or {})
        if content is None:
            return self.client.post(
                f"{self.base_url}/pay.v1.{rpc}", json=body if body is not None else {}, headers=sent
            )
        return self.client.post(f"{self.base_url}/pay.v1.{rpc}", content=content, headers=sent)

    def ok(self, rpc: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.post(rpc, body, **kwargs)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def refused(self, rpc: str, body: Any, reason: str, code: str, **kwargs: Any) -> dict[str, Any]:
        """Assert a Connect error whose message starts with the reason code."""
        response = self.post(rpc, body, **kwargs)
        assert response.status_code < 500, (response.status_code, response.text)
        error = response.json()
        assert error["code"] == code, error
        assert error["message"].startswith(f"{reason}: "), error
        return error

    def create_session(self, game_id: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "game_id": game_id,
            "user_id": "player_42",
            "item": {"title": "50 Gold Coins", "price": 499, "currency": "USD"},
            "return_url": "mygame://payment-complete",
        }
        body.update(overrides)
        return self.ok("PaymentService/CreateSession", body)


class Server:
    """`toffeepay serve` in a subprocess on a free port, against one database."""

    def __init__(
        self, db_url: str, workdir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.db_url = db_url
        self.args = args  # more `serve` options, e.g. ("--workers", "2")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TOFFEEPAY_DATABASE_URL": db_url,
            "TOFFEEPAY_PUBLIC_URL": self.url,
            "TOFFEEPAY_SWEEP_INTERVAL": "0.2",
            # Payment page payments stay `processing` this long before the sandbox settles them.
            "TOFFEEPAY_SANDBOX_SETTLE_SECONDS": "0.3",
            # Receivers in tests listen on loopback: sandbox endpoints may reach it.
            "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.group: int | None = None  # the process group of a server started here
        self.log = workdir / f"server-{self.port}.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `toffeepay` command against this server's database."""
        result = subprocess.run(
            [sys.executable, "-m", "toffeepay_server", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert result.returncode == 0, (result.stdout, result.stderr)
        return result

    def start(self) -> Server:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "toffeepay_server", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: granian's workers go down with it
        )
        self.group = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (graceful) or SIGKILL (a crash); either way no worker process outlives it."""
        if self.proc is None:
            return
        group, self.group = self.group, None
        if self.proc.poll() is None:
            if kill and group is not None:
                os.killpg(group, signal.SIGKILL)
            elif kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.proc = None

    def create_game(self, game_id: str | None = None) -> Game:
        from toffeepay_server.services import games
        from toffeepay_server.services.context import ServiceContext
        from toffeepay_server.store.database import Database

        game_id = game_id or f"game_{uuid.uuid4().hex[:12]}"

        async def create() -> Any:
            ctx = ServiceContext(db=Database(self.db_url, pool_size=1), public_url=self.url)
            try:
                return await games.create_game(ctx, game_id)
            finally:
                await ctx.db.dispose()

        created = run_async(create)
        return Game(created.game_id, created.sandbox_api_key, created.live_api_key)

    def api(self, key: str | None = None) -> Api:
        return Api(self.url, key)


RETURN_TOKEN = re.compile(r"&token=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$")


def without_token(url: str) -> str:
    """A return_url redirect without its signed `token` (which must be there, last)."""
    found = RETURN_TOKEN.search(url)
    assert found is not None, f"no return token in {url}"
    return url[: found.start()]


def sql(db_url: str, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run one SQL statement against a test database (setup and outbox inspection)."""
    from sqlalchemy import text

    from toffeepay_server.store.database import Database

    async def run() -> list[Any]:
        db = Database(db_url, pool_size=1)
        try:
            async with db.writer.connect() as conn, conn.begin():
                result = await conn.execute(text(statement), params or {})
                return list(result) if result.returns_rows else []
        finally:
            await db.dispose()

    return run_async(run)


def lapse(db_url: str, session_id: str) -> None:
    """Simulate time passing: move a session's expires_at one second into the past."""
    from toffeepay_server.store.types import Instant

    past = Instant().process_bind_param(datetime.now(UTC) - timedelta(seconds=1), None)
    sql(db_url, "UPDATE sessions SET expires_at = :t WHERE id = :id", {"t": past, "id": session_id})


def outbox(db_url: str, session_id: str) -> list[dict[str, Any]]:
    """The event bodies recorded for a session, in commit order."""
    import json

    rows = sql(db_url, "SELECT body FROM events WHERE session_id = :id ORDER BY position", {"id": session_id})
    return [json.loads(r[0]) for r in rows]


def both_modes_processors() -> Any:
    """Processors for sessions of either mode, for tests that create sessions through the services:
    the sandbox, and a Stripe adapter configured with a key but never called (creating a session
    asks a processor only whether it can charge the price)."""
    from toffeepay_server.config import Secret
    from toffeepay_server.domain.clock import system_clock
    from toffeepay_server.processors.sandbox.adapter import SandboxProcessor
    from toffeepay_server.processors.stripe.adapter import StripeProcessor
    from toffeepay_server.services.processor import Processors

    stripe = StripeProcessor(
        Secret("sk_live_never_called"), Secret("whsec_never_called"), clock=system_clock, api_base="http://127.0.0.1:9"
    )
    return Processors(SandboxProcessor(system_clock, settle_after=0), stripe)


DOCS = Path(__file__).resolve().parents[1] / "docs"


def screenshot_path(name: str) -> Path:
    """Where a browser test saves its picture: `docs/<name>` under `make screenshots`
    (TOFFEEPAY_UPDATE_SCREENSHOTS=1), else a scratch file, so a test run leaves the tree as it was."""
    if os.environ.get("TOFFEEPAY_UPDATE_SCREENSHOTS") == "1":
        return DOCS / name
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / "toffeepay-screenshots"
    scratch.mkdir(exist_ok=True)
    return scratch / name
