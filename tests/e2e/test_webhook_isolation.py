"""Where webhooks may go, and one game's slow endpoints beside another game's: a real server,
real receivers on ports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ENGINES, make_database
from tests.e2e.test_cli_dev import Listen
from tests.e2e.test_cli_dev import Receiver as ForwardReceiver
from tests.receiver import Answer, Receiver
from tests.support import Api, Game, Server

# The dispatcher gives up on an answer after 10 s; a fast game's delivery that waited for a
# slow game's slots would come only after that.
BEFORE_ANY_SLOT_IS_FREED = 8.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=ENGINES)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_private_targets_are_refused_by_default(fresh_db: str, tmp_path: Path, receiver: Receiver) -> None:
    server = Server(fresh_db, tmp_path, env={"TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "none"}).start()
    try:
        game = server.create_game()
        sandbox, live = server.api(game.sandbox_key), server.api(game.live_key)
        for api in (sandbox, live):
            for url in (
                receiver.url("/hooks"),
                f"http://localhost:{receiver.port}/hooks",
                "https://10.0.0.1/hooks",
                "https://[fc00::1]/hooks",
                "https://100.64.0.1/hooks",
            ):
                error = api.refused("WebhookService/CreateEndpoint", {"url": url}, "invalid_url", "invalid_argument")
                assert "toffeepay listen" in error["message"], error
            for url in ("https://168.63.129.16/machine", "https://[fd00:ec2::23]/", "https://[::ffff:a83f:8110]/"):
                error = api.refused("WebhookService/CreateEndpoint", {"url": url}, "invalid_url", "invalid_argument")
                assert "metadata" in error["message"], error
        # The same refusal from the command line, saying why.
        added = server.cli("webhooks", "add", game.game_id, receiver.url("/hooks"), check=False)
        assert added.returncode == 1 and "127.0.0.1" in added.stderr and "toffeepay listen" in added.stderr
        assert sandbox.ok("WebhookService/ListEndpoints")["total"] == 0

        # `toffeepay listen` forwards to the local receiver all the same: it registers no endpoint.
        with ForwardReceiver() as local:
            listen = Listen(server, game, local.url)
            try:
                created = sandbox.create_session(game.game_id)
                [(_, _, event)] = local.wait_for(created["id"], 1)
            finally:
                assert listen.stop() == 0
        assert event["event"] == "session.created" and event["data"]["session_id"] == created["id"]
    finally:
        server.stop()


def test_sandbox_setting_opens_private_targets_to_sandbox_only(
    server: Server, api: Api, game: Game, receiver: Receiver
) -> None:
    assert server.env["TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS"] == "sandbox"
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/local"), "events": ["session.created"]})
    receiver.expect("/local", created["secret"])
    session = api.create_session(game.game_id)
    [got] = receiver.wait_for("/local")
    assert got.error is None and got.event is not None and got.event["data"]["session_id"] == session["id"]
    live = server.api(game.live_key)
    error = live.refused(
        "WebhookService/CreateEndpoint", {"url": receiver.url("/live")}, "invalid_url", "invalid_argument"
    )
    assert "toffeepay listen" in error["message"]
    api.refused("WebhookService/CreateEndpoint", {"url": "http://168.63.129.16/"}, "invalid_url", "invalid_argument")


def test_a_slow_game_never_delays_another_game(server: Server, receiver: Receiver) -> None:
    slow_game, fast_game = server.create_game(), server.create_game()
    slow, fast = server.api(slow_game.sandbox_key), server.api(fast_game.sandbox_key)
    release = threading.Event()
    slow_paths = [f"/slow/{i}" for i in range(16)]
    slow_ids = []
    try:
        for path in slow_paths:
            created = slow.ok(
                "WebhookService/CreateEndpoint", {"url": receiver.url(path), "events": ["session.created"]}
            )
            receiver.expect(path, None, *[Answer(hold=release)] * 20)
            slow_ids.append(created["endpoint"]["id"])
        for _ in range(17):  # 272 deliveries, more than the dispatcher keeps in flight in all
            slow.create_session(slow_game.game_id)

        def slow_in_flight() -> int:
            with receiver.lock:
                return sum(1 for p in receiver.arrivals if p.startswith("/slow/"))

        # The slow game holds its share of the dispatcher (64 requests) and no more.
        receiver.wait(lambda: slow_in_flight() >= 64)
        created = fast.ok(
            "WebhookService/CreateEndpoint", {"url": receiver.url("/fast"), "events": ["session.created"]}
        )
        receiver.expect("/fast", created["secret"])
        session = fast.create_session(fast_game.game_id)
        [got] = receiver.wait_for("/fast", timeout=BEFORE_ANY_SLOT_IS_FREED)
        assert got.event is not None and got.event["data"]["session_id"] == session["id"]
        assert not release.is_set() and slow_in_flight() == 64
        assert not [r for r in receiver.received if r.path.startswith("/slow/")]  # every slow request still held
    finally:
        release.set()
        for endpoint_id in slow_ids:
            slow.ok("WebhookService/DeleteEndpoint", {"id": endpoint_id})
