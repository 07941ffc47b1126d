"""`toffeepay trigger|listen|sessions|events` end to end: a real server, the CLI, a real receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import toffeepay

from tests.support import Game, Server, free_port

EXPECTED_STATUS = {
    "session.created": "pending",
    "session.cancelled": "cancelled",
    "session.expired": "expired",
    "payment.created": "paid",
    "payment.succeeded": "paid",
    "session.paid": "paid",
    "payment.failed": "failed",
    "session.failed": "failed",
    "dispute.created": "paid",
}


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> None:
    """The signatures of docs/api.md (Events), checked independently of the server's code: both signature schemes."""
    parts = [p.split("=", 1) for p in headers["x-toffeepay-signature"].split(",")]
    timestamp = next(v for k, v in parts if k == "t")
    assert abs(time.time() - int(timestamp)) < tolerance
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert any(hmac.compare_digest(v, expected) for k, v in parts if k == "v1"), "X-ToffeePay-Signature does not verify"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    standard = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{standard}" in headers["webhook-signature"].split(" "), "webhook-signature does not verify"


class Receiver:
    """A game server's webhook route: records each POST; `status_for(event)` picks the answer."""

    def __init__(self, status_for: Callable[[str], int] = lambda _event: 200) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status_for = status_for
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks"
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((headers, body))
                self.send_response(receiver.status_for(headers.get("x-toffeepay-event", "")))
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    def events(self, session_id: str) -> list[tuple[dict[str, str], bytes, dict[str, Any]]]:
        found = [(h, b, json.loads(b)) for h, b in list(self.received)]
        return [(h, b, e) for h, b, e in found if e["data"].get("session_id") == session_id]

    def wait_for(
        self, session_id: str, count: int, timeout: float = 30
    ) -> list[tuple[dict[str, str], bytes, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.events(session_id)) < count:
            assert time.monotonic() < deadline, f"received {[e['event'] for _, _, e in self.events(session_id)]}"
            time.sleep(0.05)
        return self.events(session_id)

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def cli_json(server: Server, *args: str) -> Any:
    """Run a development command against the test server and parse its --json output."""
    return json.loads(server.cli(*args, "--api-url", server.url, "--json").stdout)


def active_sandbox_keys(server: Server, game: Game) -> int:
    keys = json.loads(server.cli("keys", "list", game.game_id, "--json").stdout)
    return sum(1 for k in keys if k["mode"] == "sandbox" and k["revoked_at"] is None)


class Listen:
    """`toffeepay listen --json` in a subprocess; `secret` is read from its first line."""

    def __init__(self, server: Server, game: Game, forward_to: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toffeepay_server",
                "listen",
                "--game",
                game.game_id,
                "--forward-to",
                forward_to,
                "--api-url",
                server.url,
                "--interval",
                "0.2",
                "--json",
                *extra,
            ],
            env=server.env,
            cwd=server.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first, self.proc.stderr.read() if self.proc.stderr else "listen exited"
        ready = json.loads(first)
        assert ready["ready"] is True and ready["forward_to"] == forward_to
        self.secret: str = ready["secret"]

    def lines(self, count: int) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        return [json.loads(self.proc.stdout.readline()) for _ in range(count)]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def sdk(server: Server, game: Game) -> toffeepay.ToffeePay:
    return toffeepay.ToffeePay(game.sandbox_key, base_url=server.url)


def test_trigger_runs_a_real_flow_for_every_event(server: Server, game: Game, sdk: toffeepay.ToffeePay) -> None:
    for event, status in EXPECTED_STATUS.items():
        done = cli_json(server, "trigger", event, "--game", game.game_id)
        assert done["event"] == event and done["status"] == status, done
        # The flow happened on the server, and the requested event is in the game's event log.
        session = sdk.sessions.get(done["session_id"])
        assert session.status == status and session.metadata == {"trigger": event}
        assert len(done["events"]) == 1
        logged = [e for e in sdk.webhooks.events.list(types=[event]).auto_paging_iter() if e.id == done["events"][0]]
        assert logged and toffeepay.event_to_dict(logged[0])["data"]["session_id"] == done["session_id"]
        if event == "dispute.created":
            assert [d.id for d in sdk.disputes.list(payment_id=done["payment_id"])] == [done["dispute_id"]]
        elif status in ("paid", "failed"):
            assert sdk.payments.get(done["payment_id"]).session_id == done["session_id"]
    # Each run minted its own sandbox key and revoked it; the game's own key still works.
    assert active_sandbox_keys(server, game) == 1
    assert sdk.sessions.list(limit=1).total == len(EXPECTED_STATUS)

    unknown = server.cli("trigger", "payment.refunded", "--game", game.game_id, "--api-url", server.url, check=False)
    assert unknown.returncode == 2 and "session.created" in unknown.stderr
    no_game = server.cli("trigger", "session.created", "--game", "no_such_game", "--api-url", server.url, check=False)
    assert no_game.returncode == 1 and "no_such_game" in no_game.stderr


def test_trigger_reaches_a_registered_endpoint(server: Server, game: Game, sdk: toffeepay.ToffeePay) -> None:
    with Receiver() as receiver:
        endpoint = sdk.webhooks.endpoints.create(url=receiver.url, events=["dispute.created"])
        done = cli_json(server, "trigger", "dispute.created", "--game", game.game_id)
        [(headers, body, event)] = receiver.wait_for(done["session_id"], 1)
    verify(endpoint.secret, headers, body)
    assert event["event"] == "dispute.created" and event["data"]["dispute_id"] == done["dispute_id"]
    assert event["data"]["payment_id"] == done["payment_id"] and event["mode"] == "sandbox"


def test_listen_forwards_signed_events_in_order(server: Server, game: Game, sdk: toffeepay.ToffeePay) -> None:
    earlier = sdk.sessions.create(
        game_id=game.game_id, user_id="player_42", item={"title": "Gem", "price": 5, "currency": "JPY"}
    )
    # The receiver refuses payment.created, so the listener must report that status too.
    with Receiver(lambda event: 500 if event == "payment.created" else 200) as receiver:
        listen = Listen(server, game, receiver.url)
        try:
            assert active_sandbox_keys(server, game) == 2  # the game's key and the listener's
            done = cli_json(server, "trigger", "payment.succeeded", "--game", game.game_id)
            received = receiver.wait_for(done["session_id"], 4)
            printed = listen.lines(4)
        finally:
            assert listen.stop() == 0
    types = [event["event"] for _, _, event in received]
    assert sorted(types) == sorted(["session.created", "payment.created", "payment.succeeded", "session.paid"])
    # Forwarded in commit order: the per-session sequence only grows.
    sequences = [event["data"]["sequence"] for _, _, event in received]
    assert sequences == sorted(sequences)
    for headers, body, event in received:
        verify(listen.secret, headers, body)
        assert toffeepay.Webhook.construct_event(body, headers["x-toffeepay-signature"], listen.secret) == event
        assert headers["x-toffeepay-event"] == event["event"] and headers["x-toffeepay-event-id"] == event["id"]
        assert headers["content-type"] == "application/json"
        assert event["data"]["game_id"] == game.game_id and event["mode"] == "sandbox"
    assert [(line["event_id"], line["event"]) for line in printed] == [(e["id"], e["event"]) for _, _, e in received]
    assert {line["event"]: line["status"] for line in printed} == {
        "session.created": 200,
        "payment.created": 500,
        "payment.succeeded": 200,
        "session.paid": 200,
    }
    # Events from before the listener started are not replayed, and its key is revoked on exit.
    assert not receiver.events(earlier.id) and len(receiver.received) == 4
    assert active_sandbox_keys(server, game) == 1


def test_listen_reports_an_unreachable_receiver_and_filters_types(server: Server, game: Game) -> None:
    listen = Listen(server, game, f"http://127.0.0.1:{free_port()}/webhooks", "--events", "session.cancelled")
    try:
        done = cli_json(server, "trigger", "session.cancelled", "--game", game.game_id)
        [line] = listen.lines(1)
    finally:
        assert listen.stop() == 0
    assert line["event"] == "session.cancelled" and line["status"] is None and line["error"]
    assert done["status"] == "cancelled"


def test_sessions_and_events_commands(server: Server, game: Game, sdk: toffeepay.ToffeePay) -> None:
    created = sdk.sessions.create(
        game_id=game.game_id, user_id="player_42", item={"title": "Gem", "price": 5, "currency": "JPY"}
    )
    listed = cli_json(server, "sessions", "list", "--game", game.game_id)
    assert [s["id"] for s in listed["sessions"]] == [created.id] and listed["total"] == 1
    got = cli_json(server, "sessions", "get", created.id, "--game", game.game_id)
    assert got["status"] == "pending" and got["item"] == {"title": "Gem", "price": 5, "currency": "JPY"}
    table = server.cli("sessions", "list", "--game", game.game_id, "--api-url", server.url).stdout
    assert created.id in table and "5 JPY" in table

    events = cli_json(server, "events", "list", "--game", game.game_id, "--type", "session.created")
    [event] = events["events"]
    assert event["data"]["session_id"] == created.id and event["data"]["item"]["price"] == 5
    with Receiver() as receiver:
        endpoint = sdk.webhooks.endpoints.create(url=receiver.url)
        resent = cli_json(
            server, "events", "resend", event["id"], "--game", game.game_id, "--endpoint", endpoint.endpoint.id
        )
        assert resent == {"event_id": event["id"], "deliveries": 1}
        [(headers, body, delivered)] = receiver.wait_for(created.id, 1)
    verify(endpoint.secret, headers, body)
    assert delivered["id"] == event["id"]

    missing = server.cli(
        "sessions",
        "get",
        "sess_01h00000000000000000000000",
        "--game",
        game.game_id,
        "--api-url",
        server.url,
        check=False,
    )
    assert missing.returncode == 1 and "not_found" in missing.stderr
    assert active_sandbox_keys(server, game) == 1


def test_api_key_instead_of_the_database(server: Server, game: Game, tmp_path) -> None:
    elsewhere = Server(f"sqlite:///{tmp_path / 'absent.db'}", tmp_path)  # a machine without the server's database
    ran = elsewhere.cli(
        "trigger",
        "session.created",
        "--game",
        game.game_id,
        "--api-key",
        game.sandbox_key,
        "--api-url",
        server.url,
        "--json",
    )
    assert json.loads(ran.stdout)["status"] == "pending"
    assert not (tmp_path / "absent.db").exists()
    live = elsewhere.cli(
        "sessions", "list", "--game", game.game_id, "--api-key", game.live_key, "--api-url", server.url, check=False
    )
    assert live.returncode == 2 and "sandbox key" in live.stderr
    no_db = elsewhere.cli("sessions", "list", "--game", game.game_id, "--api-url", server.url, check=False)
    assert no_db.returncode == 1 and "no database" in no_db.stderr


def test_listen_rides_out_a_server_restart(server: Server, game: Game, tmp_path) -> None:
    own = Server(server.db_url, tmp_path, env={"TOFFEEPAY_BACKGROUND": "0"}).start()
    try:
        with Receiver() as receiver:
            listen = Listen(own, game, receiver.url, "--events", "session.created")
            try:
                first = cli_json(own, "trigger", "session.created", "--game", game.game_id)
                receiver.wait_for(first["session_id"], 1)
                own.stop()
                time.sleep(1.5)  # a few failed polls
                own.start()
                second = cli_json(own, "trigger", "session.created", "--game", game.game_id)
                receiver.wait_for(second["session_id"], 1)
                lines = listen.lines(2)
            finally:
                assert listen.stop() == 0
        assert [line["status"] for line in lines] == [200, 200]
        assert listen.proc.stderr is not None and "waiting for the server" in listen.proc.stderr.read()
    finally:
        own.stop()
