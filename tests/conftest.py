"""Fixtures: every test that uses `server` runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stripe_support import NOTIFICATION_PATH, LocalStripe, stripe_env
from tests.support import Api, Game, Server, run_async

PG_ADMIN_URL = os.environ.get("TOFFEEPAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ENGINES = ["sqlite", "postgresql"]


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(run)


def make_database(engine: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database of the given engine, dropped afterwards."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp / f'toffeepay-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"toffeepay_test_{uuid.uuid4().hex[:12]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except OSError as exc:
        if os.environ.get("TOFFEEPAY_TEST_ALLOW_NO_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        raise
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", autouse=True)
def installation_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One installation key file for the run, so servers and in-process code open the same secrets."""
    if os.environ.get("TOFFEEPAY_KEY_FILE") or os.environ.get("TOFFEEPAY_SECRET_KEY"):
        yield
        return
    os.environ["TOFFEEPAY_KEY_FILE"] = str(tmp_path_factory.mktemp("installation") / "toffeepay.key")
    yield
    os.environ.pop("TOFFEEPAY_KEY_FILE", None)


@pytest.fixture(scope="session", params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from make_database(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def localstripe(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """The Stripe of one engine's server: localstripe on its own port."""
    stripe = LocalStripe(tmp_path_factory.mktemp("localstripe")).start()
    yield stripe
    stripe.stop()


@pytest.fixture(scope="session")
def server(db_url: str, localstripe: LocalStripe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`toffeepay serve` with Stripe (localstripe, sending its notifications here) as the live processor."""
    srv = Server(db_url, tmp_path_factory.mktemp("server"), env=stripe_env(localstripe.url))
    localstripe.send_webhooks_to("server", srv.url + NOTIFICATION_PATH)
    yield srv.start()
    srv.stop()


@pytest.fixture
def game(server: Server) -> Game:
    return server.create_game()


@pytest.fixture
def api(server: Server, game: Game) -> Api:
    """A JSON client holding the fresh game's sandbox key."""
    return server.api(game.sandbox_key)
