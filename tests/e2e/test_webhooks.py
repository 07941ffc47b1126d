"""Webhooks end to end: a real server, the WebhookService API, and a receiver on a port."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from tests.conftest import ENGINES, make_database
from tests.receiver import Answer, Receiver
from tests.support import Api, Game, Server, lapse, sql


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=ENGINES)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def add_endpoint(api: Api, receiver: Receiver, path: str, *answers: Answer, **body: Any) -> tuple[dict[str, Any], str]:
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url(path), **body})
    receiver.expect(path, created["secret"], *answers)
    return created["endpoint"], created["secret"]


def getting_started_signature(secret: str, header: str, body: bytes) -> None:
    """The Getting Started guide's recipe, computed here independently of the SDK."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = parts["t"]
    signed_payload = t.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(time.time() - int(t)) < 300


def crash(server: Server) -> None:
    """SIGKILL the server and its worker processes at once, as a power cut would."""
    assert server.proc is not None
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [server.proc.pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.proc.wait(10)
    server.proc = None


def session_flow(api: Api, game: Game, server: Server) -> dict[str, str]:
    created = api.create_session(game.game_id, metadata={"order": "A-1"})
    cancelled = api.create_session(game.game_id)
    api.ok("PaymentService/CancelSession", {"id": cancelled["id"]})
    expired = api.create_session(game.game_id)
    lapse(server.db_url, expired["id"])  # the sweeper records the expiry within seconds
    return {"created": created["id"], "cancelled": cancelled["id"], "expired": expired["id"]}


def test_session_events_arrive_signed_and_verifiable(server: Server, api: Api, game: Game, receiver: Receiver) -> None:
    endpoint, secret = add_endpoint(api, receiver, "/hooks")
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    assert endpoint["url"] == receiver.url("/hooks") and endpoint["format"] == "json" and endpoint["mode"] == "sandbox"
    ids = session_flow(api, game, server)
    got = receiver.wait_for("/hooks", 5)
    assert all(r.error is None and r.status == 200 for r in got), receiver.summary()
    by_type = Counter(r.event["event"] for r in got)
    assert by_type == {"session.created": 3, "session.cancelled": 1, "session.expired": 1}
    verifier = standardwebhooks.Webhook(secret)
    for r in got:
        getting_started_signature(secret, r.headers["x-toffeepay-signature"], r.body)
        assert verifier.verify(r.body, r.headers) == json.loads(r.body)
        assert r.headers["x-toffeepay-event-id"] == r.headers["webhook-id"] == r.event["id"]
        assert str(uuid.UUID(r.event["id"])) == r.event["id"]
        assert r.headers["x-toffeepay-event"] == r.event["event"]
        assert r.event["mode"] == "sandbox" and r.event["timestamp"].endswith("Z")
    cancelled = next(r.event for r in got if r.event["event"] == "session.cancelled")
    assert cancelled["data"]["session_id"] == ids["cancelled"]
    assert cancelled["data"]["status"] == "cancelled" and cancelled["data"]["previous_status"] == "pending"
    assert cancelled["data"]["sequence"] == 2 and "cancelled_at" in cancelled["data"]
    first = next(r.event for r in got if r.event["data"]["session_id"] == ids["created"])
    assert first["data"]["item"] == {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
    assert first["data"]["metadata"] == {"order": "A-1"} and first["data"]["sequence"] == 1


def test_payment_events_and_legacy_callbacks(server: Server, api: Api, game: Game, receiver: Receiver) -> None:
    _, secret = add_endpoint(api, receiver, "/hooks")
    _, legacy_secret = add_endpoint(api, receiver, "/legacy", format="legacy_form")
    paid = api.create_session(game.game_id, metadata={"order": "A-1"})
    payment = api.ok(
        "SandboxService/PaySession", {"session_id": paid["id"], "method": "apple_pay", "outcome": "succeeded"}
    )
    declined = api.create_session(game.game_id)
    api.ok("SandboxService/PaySession", {"session_id": declined["id"], "outcome": "card_declined"})
    partial = api.create_session(game.game_id)
    short = api.ok("SandboxService/PaySession", {"session_id": partial["id"], "outcome": "partial"})
    api.ok("SandboxService/CreateDispute", {"payment_id": payment["id"], "reason": "fraudulent"})
    cancelled = api.create_session(game.game_id)
    api.ok("PaymentService/CancelSession", {"id": cancelled["id"]})
    expired = api.create_session(game.game_id)
    api.ok("SandboxService/ExpireSession", {"session_id": expired["id"]})

    got = receiver.wait_for("/hooks", 17)
    assert all(r.error is None for r in got), receiver.summary()
    assert {r.event["event"] for r in got} == {
        "session.created",
        "session.paid",
        "session.failed",
        "session.expired",
        "session.cancelled",
        "payment.created",
        "payment.succeeded",
        "payment.failed",
        "dispute.created",
    }
    for r in got:
        getting_started_signature(secret, r.headers["x-toffeepay-signature"], r.body)
        standardwebhooks.Webhook(secret).verify(r.body, r.headers)
    succeeded = next(r.event for r in got if r.event["event"] == "payment.succeeded")
    assert succeeded["data"]["payment_id"] == payment["id"] and succeeded["data"]["session_id"] == paid["id"]
    assert succeeded["data"]["previous_status"] == "processing" and succeeded["data"]["amount"] == 499
    sequences = sorted(r.event["data"]["sequence"] for r in got if r.event["data"].get("session_id") == paid["id"])
    assert sequences == list(range(1, len(sequences) + 1))

    callbacks = {r.fields["transaction_token"]: r.fields for r in receiver.wait_for("/legacy", 5)}
    assert all(r.error is None for r in receiver.at("/legacy")), receiver.summary()
    for fields in callbacks.values():  # the hash, recomputed here as docs/webhooks.md describes it
        message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")
        assert fields["hash"] == hmac.new(legacy_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert callbacks[paid["id"]]["status"] == "PAID" and callbacks[paid["id"]]["paid_amount"] == "499"
    assert callbacks[paid["id"]]["transaction_id"] == payment["id"]
    assert callbacks[paid["id"]]["custom_parameters"] == '{"order":"A-1"}'
    assert callbacks[declined["id"]]["status"] == "FAILED" and callbacks[declined["id"]]["paid_amount"] == "0"
    assert callbacks[partial["id"]]["status"] == "PARTIAL"
    assert callbacks[partial["id"]]["paid_amount"] == str(short["amount_received"])
    assert 0 < short["amount_received"] < 499
    assert callbacks[cancelled["id"]]["status"] == "CANCELLED"
    assert callbacks[cancelled["id"]]["transaction_id"] == cancelled["id"]
    assert callbacks[expired["id"]]["status"] == "EXPIRED"
    assert {f["site_id"] for f in callbacks.values()} == {"toffeepay"}


def test_endpoint_management_api(server: Server, api: Api, game: Game, receiver: Receiver) -> None:
    live = server.api(game.live_key)
    for url, reason in [
        ("http://hooks.example.com/x", "invalid_url"),
        ("https://localhost/x", "invalid_url"),
        ("https://127.0.0.1/x", "invalid_url"),
        ("https://10.1.2.3/x", "invalid_url"),
        ("https://169.254.169.254/latest", "invalid_url"),
        ("https://[::1]/x", "invalid_url"),
        ("https://[::ffff:192.168.0.1]/x", "invalid_url"),
        ("ftp://hooks.example.com/x", "invalid_url"),
        ("", "invalid_url"),
    ]:
        live.refused("WebhookService/CreateEndpoint", {"url": url}, reason, "invalid_argument")
    public = live.ok("WebhookService/CreateEndpoint", {"url": "https://1.1.1.1/hooks", "events": ["payment.succeeded"]})
    assert public["endpoint"]["mode"] == "live" and public["endpoint"]["events"] == ["payment.succeeded"]
    api.refused("WebhookService/CreateEndpoint", {"url": "http://169.254.169.254/"}, "invalid_url", "invalid_argument")
    api.refused(
        "WebhookService/CreateEndpoint",
        {"url": receiver.url("/x"), "format": "xml"},
        "invalid_format",
        "invalid_argument",
    )
    api.refused(
        "WebhookService/CreateEndpoint",
        {"url": receiver.url("/x"), "events": ["payment.done"]},
        "invalid_event_type",
        "invalid_argument",
    )
    api.refused(
        "WebhookService/CreateEndpoint",
        {"url": receiver.url("/x"), "secret": "mine"},
        "invalid_argument",
        "invalid_argument",
    )

    created, _ = add_endpoint(api, receiver, "/managed", description="game server")
    listed = api.ok("WebhookService/ListEndpoints", {})
    assert listed == {"endpoints": [created], "total": 1, "has_more": False}  # the live one is not listed here
    assert "secret" not in json.dumps(listed)
    updated = api.ok(
        "WebhookService/UpdateEndpoint",
        {"id": created["id"], "filter": {"events": ["session.cancelled"]}, "enabled": False},
    )
    assert updated["events"] == ["session.cancelled"] and updated["enabled"] is False
    assert updated["description"] == "game server" and updated["url"] == created["url"]
    cleared = api.ok("WebhookService/UpdateEndpoint", {"id": created["id"], "filter": {"events": []}, "enabled": True})
    assert cleared["events"] == [] and cleared["enabled"] is True
    api.refused(
        "WebhookService/UpdateEndpoint", {"id": created["id"], "url": "javascript:x"}, "invalid_url", "invalid_argument"
    )
    rotated = api.ok("WebhookService/RotateSecret", {"id": created["id"], "overlap_seconds": 600})
    assert rotated["secret"].startswith("whsec_") and rotated["previous_secret_expires_at"].endswith("Z")
    immediate = api.ok("WebhookService/RotateSecret", {"id": created["id"], "overlap_seconds": 0})
    assert "previous_secret_expires_at" not in immediate
    api.refused(
        "WebhookService/RotateSecret",
        {"id": created["id"], "overlap_seconds": 700000},
        "invalid_argument",
        "invalid_argument",
    )
    other = server.create_game()
    server.api(other.sandbox_key).refused(
        "WebhookService/DeleteEndpoint", {"id": created["id"]}, "not_found", "not_found"
    )
    live.refused("WebhookService/RotateSecret", {"id": created["id"]}, "not_found", "not_found")
    assert api.ok("WebhookService/DeleteEndpoint", {"id": created["id"]}) == {}
    api.refused("WebhookService/DeleteEndpoint", {"id": created["id"]}, "not_found", "not_found")
    assert api.ok("WebhookService/ListEndpoints", {}) == {"endpoints": [], "total": 0, "has_more": False}
    # Replaying a mutating call with its Idempotency-Key answers the first result again.
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("WebhookService/CreateEndpoint", {"url": receiver.url("/once")}, headers=key)
    again = api.post("WebhookService/CreateEndpoint", {"url": receiver.url("/once")}, headers=key)
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert api.ok("WebhookService/ListEndpoints", {})["total"] == 1


def test_list_events_pages_and_resumes_after_a_cursor(server: Server, api: Api, game: Game, receiver: Receiver) -> None:
    ids = session_flow(api, game, server)
    newest = api.ok("WebhookService/ListEvents", {"limit": 2})
    assert newest["total"] >= 4 and newest["has_more"] is True and len(newest["events"]) == 2
    deadline = time.monotonic() + 20
    while api.ok("WebhookService/ListEvents", {"types": ["session.expired"]})["total"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    everything = api.ok("WebhookService/ListEvents", {"limit": 250})
    assert everything["total"] == 5 and everything["has_more"] is False
    events = everything["events"]
    assert [e["event"] for e in events][-1] == "session.created"  # newest first
    oldest = events[-1]
    assert oldest["data"]["session_id"] == ids["created"]
    assert oldest["data"]["item"]["price"] == 499 and isinstance(oldest["data"]["item"]["price"], int)
    resumed = api.ok("WebhookService/ListEvents", {"after": oldest["id"]})
    assert [e["id"] for e in resumed["events"]] == [e["id"] for e in reversed(events[:-1])]  # oldest first
    tail = api.ok("WebhookService/ListEvents", {"after": oldest["id"], "limit": 2, "offset": 2})
    assert [e["id"] for e in tail["events"]] == [e["id"] for e in resumed["events"][2:4]]
    assert tail["total"] == 4 and tail["has_more"] is False
    only = api.ok("WebhookService/ListEvents", {"types": ["session.cancelled", "session.expired"]})
    assert sorted(e["event"] for e in only["events"]) == ["session.cancelled", "session.expired"]
    window = api.ok("WebhookService/ListEvents", {"from": oldest["timestamp"], "to": oldest["timestamp"]})
    assert [e["id"] for e in window["events"]] == [oldest["id"]]
    api.refused("WebhookService/ListEvents", {"after": str(uuid.uuid4())}, "not_found", "not_found")
    api.refused("WebhookService/ListEvents", {"types": ["nope"]}, "invalid_event_type", "invalid_argument")
    api.refused("WebhookService/ListEvents", {"limit": 251}, "invalid_limit", "invalid_argument")
    api.refused("WebhookService/ListEvents", {"from": "yesterday"}, "invalid_time_range", "invalid_argument")
    other = server.create_game()
    assert server.api(other.sandbox_key).ok("WebhookService/ListEvents", {})["total"] == 0
    assert server.api(game.live_key).ok("WebhookService/ListEvents", {})["total"] == 0

    # ResendEvent: the same event (same id) again, to every endpoint that wants it or to one.
    endpoint, _ = add_endpoint(api, receiver, "/resent")
    assert api.ok("WebhookService/ResendEvent", {"id": oldest["id"]}) == {"deliveries": 1}
    assert api.ok("WebhookService/ResendEvent", {"id": oldest["id"], "endpoint_id": endpoint["id"]}) == {
        "deliveries": 1
    }
    got = receiver.wait_for("/resent", 2)
    assert [r.event["id"] for r in got] == [oldest["id"]] * 2 and all(r.error is None for r in got)
    api.refused("WebhookService/ResendEvent", {"id": str(uuid.uuid4())}, "not_found", "not_found")
    api.refused("WebhookService/ResendEvent", {"id": oldest["id"], "endpoint_id": "we_nope"}, "not_found", "not_found")


def test_cli_endpoint_lifecycle(server: Server, game: Game, receiver: Receiver) -> None:
    added = json.loads(
        server.cli(
            "webhooks",
            "add",
            game.game_id,
            receiver.url("/cli"),
            "--mode",
            "sandbox",
            "--events",
            "session.created",
            "--json",
        ).stdout
    )
    assert set(added) == {"endpoint_id", "secret"}
    receiver.expect("/cli", added["secret"])
    listed = json.loads(server.cli("webhooks", "list", game.game_id, "--json").stdout)
    assert [e["endpoint_id"] for e in listed] == [added["endpoint_id"]] and listed[0]["events"] == ["session.created"]
    server.api(game.sandbox_key).create_session(game.game_id)
    assert receiver.wait_for("/cli")[0].error is None
    rotated = json.loads(server.cli("webhooks", "rotate", added["endpoint_id"], "--json").stdout)
    assert rotated["secret"] != added["secret"] and rotated["previous_secret_expires_at"]
    live = server.cli("webhooks", "add", game.game_id, "http://hooks.example.com/", "--mode", "live", check=False)
    assert live.returncode == 1 and "invalid_url" in live.stderr
    server.cli("webhooks", "remove", added["endpoint_id"])
    assert json.loads(server.cli("webhooks", "list", game.game_id, "--json").stdout) == []


def test_nothing_is_lost_when_the_server_is_killed(fresh_db: str, tmp_path: Path, receiver: Receiver) -> None:
    quiet = Server(fresh_db, tmp_path, env={"TOFFEEPAY_BACKGROUND": "0"}).start()
    game = quiet.create_game()
    api = quiet.api(game.sandbox_key)
    add_endpoint(api, receiver, "/kept", Answer(500))
    committed = [api.create_session(game.game_id)["id"] for _ in range(5)]
    crash(quiet)  # after the commits, before any delivery
    assert receiver.at("/kept") == []
    server = Server(fresh_db, tmp_path).start()
    try:
        got = receiver.wait_for("/kept", 6)  # one failed first attempt, then all five
        assert {r.event["data"]["session_id"] for r in got if r.status == 200} == set(committed)
        # Killed again between a failed attempt and its retry: the retry comes from the next process.
        receiver.expect("/kept", receiver.secrets["/kept"], Answer(500))
        server.api(game.sandbox_key).create_session(game.game_id)
        failed = receiver.wait_for("/kept", 7)[-1]
        assert failed.status == 500
        deadline = time.monotonic() + 20
        while sql(fresh_db, "SELECT COUNT(*) FROM delivery_attempts WHERE status_code = 500") != [(2,)]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        crash(server)
        server.start()
        retried = receiver.wait_for("/kept", 8, timeout=30)[-1]
        assert retried.status == 200 and retried.event_id == failed.event_id
    finally:
        server.stop()


def test_two_worker_processes_send_each_event_once(fresh_db: str, tmp_path: Path, receiver: Receiver) -> None:
    server = Server(fresh_db, tmp_path, env={"TOFFEEPAY_BACKGROUND": "0"}).start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        game = server.create_game()
        api = server.api(game.sandbox_key)
        add_endpoint(api, receiver, "/once")
        for n in range(2):
            log = (tmp_path / f"worker-{n}.log").open("ab")
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "toffeepay_server", "worker"],
                    env=server.env,
                    cwd=server.workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        created = [api.create_session(game.game_id)["id"] for _ in range(60)]
        receiver.wait_for("/once", 60)
        # Both have started (one may have sent everything before the other was up).
        deadline = time.monotonic() + 60
        for n in range(2):
            while "worker started" not in (tmp_path / f"worker-{n}.log").read_text():
                assert time.monotonic() < deadline
                time.sleep(0.05)

        def all_sends_accounted_for() -> bool:
            # Nothing is left to send, and every attempt the workers recorded has arrived.
            pending = sql(fresh_db, "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")[0][0]
            attempts = sql(fresh_db, "SELECT COUNT(*) FROM delivery_attempts")[0][0]
            return pending == 0 and attempts == len(receiver.at("/once"))

        deadline = time.monotonic() + 30
        while not all_sends_accounted_for():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        got = receiver.at("/once")
        assert all(r.error is None for r in got)
        assert Counter(r.event_id for r in got).most_common(1)[0][1] == 1
        assert {r.event["data"]["session_id"] for r in got} == set(created)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            assert worker.wait(30) == 0
        server.stop()
