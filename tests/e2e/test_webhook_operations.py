"""Operating webhooks through a real server and real receivers, both engines: attempts,
endpoint health, failing endpoints warned then disabled, replay, test events, chaos mode, the
signature debugger, and the Getting Started guide's top-level fields.

The retry schedule and the warn/disable periods are set short through their settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import toffeepay

from tests.conftest import make_database
from tests.receiver import Answer, Receiver
from tests.support import Api, Game, Server

OPS_ENV = {
    "TOFFEEPAY_WEBHOOK_RETRY_SCHEDULE": "1s",
    "TOFFEEPAY_WEBHOOK_RETRY_FOR": "5s",
    "TOFFEEPAY_WEBHOOK_WARN_AFTER": "3s",
    "TOFFEEPAY_WEBHOOK_DISABLE_AFTER": "6s",
}


@pytest.fixture(scope="module")
def ops_server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An installation (own database, same engine) whose failure periods are seconds long."""
    engine = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    database = make_database(engine, tmp_path_factory.mktemp("ops-db"))
    srv = Server(next(database), tmp_path_factory.mktemp("ops"), env=OPS_ENV).start()
    yield srv
    srv.stop()
    next(database, None)


@pytest.fixture
def ops(ops_server: Server) -> tuple[Server, Game, Api]:
    game = ops_server.create_game()
    return ops_server, game, ops_server.api(game.sandbox_key)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def add(api: Api, receiver: Receiver, path: str, *answers: Answer, **body: Any) -> tuple[dict[str, Any], str]:
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url(path), **body})
    receiver.expect(path, created["secret"], *answers)
    return created["endpoint"], created["secret"]


def endpoint_of(api: Api, endpoint_id: str) -> dict[str, Any]:
    [found] = [e for e in api.ok("WebhookService/ListEndpoints")["endpoints"] if e["id"] == endpoint_id]
    return found


def attempts(api: Api, **filters: Any) -> dict[str, Any]:
    return api.ok("WebhookService/ListDeliveryAttempts", filters)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_an_endpoint_down_then_up_has_its_attempts_listed(ops: tuple[Server, Game, Api], receiver: Receiver) -> None:
    server, game, api = ops
    endpoint, _ = add(api, receiver, "/flaky", Answer(503, body=b"down for maintenance"), events=["session.created"])
    session = api.create_session(game.game_id)
    got = receiver.wait_for("/flaky", 2)
    assert [r.status for r in got] == [503, 200] and got[0].event_id == got[1].event_id

    # The answer is in; its attempt is recorded a moment later.
    receiver.wait(lambda: attempts(api, endpoint_id=endpoint["id"])["total"] == 2)
    listed = attempts(api, endpoint_id=endpoint["id"])
    assert listed["total"] == 2 and listed["has_more"] is False
    ok, failed = listed["attempts"]  # newest first
    assert ok["id"].startswith("atmpt_") and ok["event_id"] == got[0].event_id
    assert ok["endpoint_id"] == endpoint["id"] and ok["trigger"] == "scheduled"
    assert (ok["status"], ok["http_status"], ok["attempt_number"]) == ("succeeded", 200, 2)
    assert ok["response_excerpt"] == "ok" and "next_attempt_at" not in ok
    assert (failed["status"], failed["http_status"], failed["attempt_number"]) == ("failed", 503, 1)
    assert failed["response_excerpt"] == "down for maintenance" and "error" not in failed
    assert failed["next_attempt_at"] > failed["created_at"]
    assert isinstance(failed["latency_ms"], int) and failed["latency_ms"] >= 0
    assert attempts(api, endpoint_id=endpoint["id"], status="failed")["total"] == 1
    assert attempts(api, event_id=got[0].event_id)["total"] == 2
    api.refused("WebhookService/ListDeliveryAttempts", {"status": "maybe"}, "invalid_status", "invalid_argument")

    health = endpoint_of(api, endpoint["id"])
    assert health["enabled"] is True and "disabled_reason" not in health
    assert health["last_success_at"] >= health["last_failure_at"] and "failing_since" not in health

    # A connection nobody answers: no http_status, an error instead.
    dead, _ = add(api, receiver, "/unused", events=["session.cancelled"])
    api.ok("WebhookService/UpdateEndpoint", {"id": dead["id"], "url": "http://127.0.0.1:9/refused"})
    api.ok("PaymentService/CancelSession", {"id": session["id"]})
    api_attempts = lambda: attempts(api, endpoint_id=dead["id"])["attempts"]  # noqa: E731
    receiver.wait(lambda: bool(api_attempts()))
    [refused] = api_attempts()[-1:]
    assert refused["status"] == "failed" and "http_status" not in refused and refused["error"]

    # The same list from the command line.
    printed = json.loads(
        server.cli("webhooks", "attempts", game.game_id, "--endpoint", endpoint["id"], "--json").stdout
    )
    assert [(a["status"], a["http_status"]) for a in printed["attempts"]] == [("succeeded", 200), ("failed", 503)]


def test_a_dead_endpoint_is_warned_about_then_disabled_and_replayed_after_enabling(
    ops: tuple[Server, Game, Api], receiver: Receiver
) -> None:
    _server, game, api = ops
    started = datetime.now(UTC) - timedelta(seconds=1)
    dead, _ = add(api, receiver, "/dead", *[Answer(503)] * 1000)
    add(api, receiver, "/other")
    first = api.create_session(game.game_id)

    def about_dead(event_type: str) -> list[Any]:
        return [r for r in receiver.at("/other") if r.event and r.event["event"] == event_type]

    receiver.wait(lambda: bool(about_dead("endpoint.disabled")), timeout=30)
    [failing] = about_dead("endpoint.failing")
    [disabled] = about_dead("endpoint.disabled")
    for got in (failing, disabled):
        assert got.error is None and got.event is not None
        assert got.event["data"]["endpoint_id"] == dead["id"] and got.event["data"]["url"] == dead["url"]
        assert got.event["data"]["failing_since"]
    # Neither went to the endpoint they are about.
    assert not [r for r in receiver.at("/dead") if r.headers.get("x-toffeepay-event", "").startswith("endpoint.")]
    health = endpoint_of(api, dead["id"])
    assert health["enabled"] is False and health["disabled_reason"] == "failing" and health["failing_since"]

    # Disabled: nothing goes to it, not even on request.
    tried_before = attempts(api, endpoint_id=dead["id"])["total"]
    missed = api.create_session(game.game_id)
    receiver.wait(lambda: any(r.event and r.event.get("session_id") == missed["id"] for r in receiver.at("/other")))
    missed_id = next(r.event_id for r in receiver.at("/other") if r.event and r.event.get("session_id") == missed["id"])
    api.refused(
        "WebhookService/ResendEvent",
        {"id": missed_id, "endpoint_id": dead["id"]},
        "endpoint_disabled",
        "failed_precondition",
    )
    api.refused("WebhookService/SendTestEvent", {"endpoint_id": dead["id"]}, "endpoint_disabled", "failed_precondition")
    assert api.ok("WebhookService/ResendEvent", {"id": missed_id})["deliveries"] == 1  # the other endpoint only
    assert attempts(api, endpoint_id=dead["id"])["total"] == tried_before
    assert attempts(api, endpoint_id=dead["id"], event_id=missed_id)["total"] == 0

    # It recovers; enabling clears its failure run, and a replay sends exactly what it missed.
    receiver.scripts["/dead"] = []
    enabled = api.ok("WebhookService/UpdateEndpoint", {"id": dead["id"], "enabled": True})
    assert enabled["enabled"] is True and "disabled_reason" not in enabled and "failing_since" not in enabled
    delivered_ok = {r.event_id for r in receiver.at("/dead") if r.status == 200}
    assert delivered_ok == set()
    replayed = api.ok("WebhookService/ReplayEvents", {"endpoint_id": dead["id"], "from": rfc3339(started)})
    expected = {
        r.event_id
        for r in receiver.at("/other")
        if r.event and r.event.get("session_id") in (first["id"], missed["id"])
    }
    assert replayed["replayed"] == len(expected) == 2
    receiver.wait(lambda: {r.event_id for r in receiver.at("/dead") if r.status == 200} == expected)
    receiver.wait(lambda: attempts(api, endpoint_id=dead["id"], status="succeeded")["total"] == 2)
    replays = attempts(api, endpoint_id=dead["id"], status="succeeded")["attempts"]
    assert {a["event_id"] for a in replays} == expected and {a["trigger"] for a in replays} == {"replay"}
    # Exactly the missed events: each once, and nothing about the endpoint itself.
    assert sorted(r.event_id for r in receiver.at("/dead") if r.status == 200) == sorted(expected)


def test_replay_by_type_and_time_and_only_failed(ops: tuple[Server, Game, Api], receiver: Receiver) -> None:
    _server, game, api = ops
    endpoint, _ = add(api, receiver, "/replays")
    a = api.create_session(game.game_id)
    receiver.wait_for("/replays", 1)
    between = datetime.now(UTC)
    b = api.create_session(game.game_id)
    api.ok("PaymentService/CancelSession", {"id": b["id"]})
    receiver.wait_for("/replays", 3)
    first = {r.event["event"] + ":" + r.event["session_id"]: r.event_id for r in receiver.at("/replays") if r.event}

    by_type = api.ok(
        "WebhookService/ReplayEvents",
        {"endpoint_id": endpoint["id"], "types": ["session.cancelled"], "from": rfc3339(between - timedelta(hours=1))},
    )
    assert by_type["replayed"] == 1
    again = receiver.wait_for("/replays", 4)[-1]
    assert again.event_id == first["session.cancelled:" + b["id"]] and again.error is None

    by_time = api.ok("WebhookService/ReplayEvents", {"endpoint_id": endpoint["id"], "from": rfc3339(between)})
    assert by_time["replayed"] == 2  # b's created and cancelled, not a's
    got = receiver.wait_for("/replays", 6)[-2:]
    assert {r.event_id for r in got} == {first["session.created:" + b["id"]], first["session.cancelled:" + b["id"]]}
    assert first["session.created:" + a["id"]] not in {r.event_id for r in got}
    api.refused(
        "WebhookService/ReplayEvents", {"endpoint_id": endpoint["id"]}, "invalid_time_range", "invalid_argument"
    )

    # only_failed: an endpoint that failed one event for good, then recovered.
    flaky, _ = add(api, receiver, "/only-failed", *[Answer(500)] * 1000)
    lost = api.create_session(game.game_id)

    def given_up() -> bool:
        found = attempts(api, endpoint_id=flaky["id"])["attempts"]
        return bool(found) and "next_attempt_at" not in found[0] and found[0]["status"] == "failed"

    receiver.wait(given_up, timeout=30)
    receiver.scripts["/only-failed"] = []
    fine = api.create_session(game.game_id)
    receiver.wait(lambda: any(r.status == 200 for r in receiver.at("/only-failed")))
    since = rfc3339(between)
    only = api.ok("WebhookService/ReplayEvents", {"endpoint_id": flaky["id"], "from": since, "only_failed": True})
    assert only["replayed"] == 1
    receiver.wait(lambda: sum(1 for r in receiver.at("/only-failed") if r.status == 200) == 2)
    oks = [r.event for r in receiver.at("/only-failed") if r.status == 200 and r.event]
    assert [e["session_id"] for e in oks] == [fine["id"], lost["id"]]


def test_a_test_event_is_signed_sent_now_and_recorded(ops: tuple[Server, Game, Api], receiver: Receiver) -> None:
    _server, _game, api = ops
    endpoint, secret = add(api, receiver, "/ping", events=["payment.succeeded"])  # the filter does not apply
    attempt = api.ok("WebhookService/SendTestEvent", {"endpoint_id": endpoint["id"]})
    [got] = receiver.at("/ping")  # sent before the answer came back
    assert got.error is None and got.event is not None
    assert got.event["event"] == "ping" and got.event["data"] == {"endpoint_id": endpoint["id"]}
    assert toffeepay.Webhook.construct_event(got.body, got.headers["x-toffeepay-signature"], secret) == got.event
    assert attempt["trigger"] == "test" and attempt["status"] == "succeeded" and attempt["http_status"] == 200
    assert attempt["event_id"] == got.event_id and attempt["endpoint_id"] == endpoint["id"]
    assert attempts(api, endpoint_id=endpoint["id"])["attempts"] == [attempt]
    api.refused("WebhookService/SendTestEvent", {"endpoint_id": "we_nope"}, "not_found", "not_found")


def test_chaos_mode_duplicates_delays_and_bad_signatures(ops: tuple[Server, Game, Api], receiver: Receiver) -> None:
    server, game, api = ops
    # Not more than 30% badly signed: this server gives an event up after 5 s of failed attempts.
    chaos = {"duplicate_percent": 100, "delay_max_seconds": 2, "bad_signature_percent": 30}
    endpoint, _ = add(api, receiver, "/chaos", chaos=chaos, events=["session.created"])
    assert endpoint["chaos"] == chaos
    created = [api.create_session(game.game_id)["id"] for _ in range(8)]
    verified: Counter[str] = Counter()

    def each_verified() -> bool:
        verified.clear()
        verified.update(r.event["session_id"] for r in receiver.at("/chaos") if r.error is None and r.event)
        refused = any(r.error for r in receiver.at("/chaos"))
        return refused and all(verified[s] >= 1 for s in created) and any(n >= 2 for n in verified.values())

    receiver.wait(each_verified, timeout=60)
    assert any(n >= 2 for n in verified.values())  # duplicates: the same event, verified twice
    rejected = [r for r in receiver.at("/chaos") if r.error]
    assert rejected and all(r.error.startswith("bad_signature") for r in rejected)  # the SDK refused them
    # The dispatcher records an attempt once its answer is in, a moment after the receiver saw it.
    receiver.wait(lambda: bool(attempts(api, endpoint_id=endpoint["id"], status="failed")["attempts"]))
    failed = attempts(api, endpoint_id=endpoint["id"], status="failed")["attempts"]
    assert failed and all("wrong signature" in a["error"] for a in failed)  # counted failed, then retried
    # Late: the first copies did not all arrive as soon as they were created.
    lateness = [
        r.arrived - datetime.fromisoformat(r.event["timestamp"].replace("Z", "+00:00")).timestamp()
        for r in receiver.at("/chaos")
        if r.event
    ]
    assert max(lateness) > 0
    off = api.ok("WebhookService/UpdateEndpoint", {"id": endpoint["id"], "chaos": {}})
    assert "chaos" not in off

    live = server.api(game.live_key)
    api_live_error = live.refused(
        "WebhookService/CreateEndpoint",
        {"url": "https://hooks.example.com/x", "chaos": chaos},
        "invalid_argument",
        "invalid_argument",
    )
    assert "sandbox" in api_live_error["message"]
    api.refused(
        "WebhookService/CreateEndpoint",
        {"url": receiver.url("/x"), "chaos": {"delay_max_seconds": 301}},
        "invalid_argument",
        "invalid_argument",
    )


def test_code_from_the_getting_started_guide_reads_a_real_session_paid(
    ops: tuple[Server, Game, Api], receiver: Receiver
) -> None:
    _server, game, api = ops
    add(api, receiver, "/guide", events=["session.paid"])
    session = api.create_session(game.game_id)
    api.ok("SandboxService/PaySession", {"session_id": session["id"], "method": "card", "outcome": "succeeded"})
    [got] = receiver.wait_for("/guide")
    granted = []

    # As the Getting Started guide's sample payload reads.
    body = json.loads(got.body)
    if body["status"] == "paid":
        granted.append((body["session_id"], body["user_id"], body["item"]["title"]))
    assert granted == [(session["id"], "player_42", "50 Gold Coins")]
    assert body["game_id"] == game.game_id and body["item"] == {
        "title": "50 Gold Coins",
        "price": 499,
        "currency": "USD",
    }
    assert body["data"]["session_id"] == session["id"]  # the full object stays under data


def test_verify_names_each_failure_kind(ops_server: Server, tmp_path: Path) -> None:
    secret = "whsec_" + "A" * 43 + "="
    now = int(datetime.now(UTC).timestamp())
    body = json.dumps({"id": "e1", "event": "session.paid", "data": {"status": "paid"}}, separators=(",", ":")).encode()
    header = f"t={now},v1={toffeepay.WebhookSignature.compute(body, now, secret)}"

    def verify(raw: bytes, sig: str, key: str = secret) -> tuple[int, dict[str, Any]]:
        path = tmp_path / "body"
        path.write_bytes(raw)
        done = subprocess.run(
            [sys.executable, "-m", "toffeepay_server", "verify", "--secret", key, "--header", sig,
             "--body-file", str(path), "--json"],
            capture_output=True, text=True, env=ops_server.env, timeout=60,
        )  # fmt: skip
        return done.returncode, json.loads(done.stdout)

    code, said = verify(body, header)
    assert code == 0 and said["valid"] is True and said["reason"] is None
    cases = {
        "malformed_header": (body, "v1=abc", secret),
        "stale_timestamp": (
            body,
            f"t={now - 3600},v1={toffeepay.WebhookSignature.compute(body, now - 3600, secret)}",
            secret,
        ),
        "body_added_newline": (body + b"\n", header, secret),
        "body_reencoded": (json.dumps(json.loads(body), indent=2).encode(), header, secret),
        "wrong_secret": (body, header, "whsec_" + "B" * 43 + "="),
        "body_changed": (body[:-10], header, secret),
    }
    for reason, (raw, sig, key) in cases.items():
        code, said = verify(raw, sig, key)
        assert code == 1 and said["valid"] is False and said["reason"] == reason, (reason, said)
        # The SDK says the same, and its verifier refuses the same request.
        assert toffeepay.Webhook.explain(raw, sig, key).reason == reason
        with pytest.raises(toffeepay.SignatureVerificationError):
            toffeepay.Webhook.construct_event(raw, sig, key)
    stale = verify(*cases["stale_timestamp"])[1]
    assert stale["skew_seconds"] <= -3600 and f"{-stale['skew_seconds']} s in the past" in stale["message"]
    assert "beyond the tolerance of 300 s" in stale["message"]


def test_the_replay_command_follows_the_replay_to_its_end(ops: tuple[Server, Game, Api], receiver: Receiver) -> None:
    server, game, api = ops
    endpoint, _ = add(api, receiver, "/cli-replay", events=["session.created"])
    created = [api.create_session(game.game_id)["id"] for _ in range(3)]
    receiver.wait_for("/cli-replay", 3)
    done = server.cli(
        "events", "replay", "--game", game.game_id, "--since", "1h", "--endpoint", endpoint["id"],
        "--type", "session.created", "--api-url", server.url, "--json",
    )  # fmt: skip
    printed = json.loads(done.stdout)
    assert printed == {"replayed": 3, "attempted": 3}  # it returned once every replayed delivery was tried
    again = [r.event["session_id"] for r in receiver.at("/cli-replay")[3:] if r.event]
    assert sorted(again) == sorted(created)
    bad = server.cli(
        "events", "replay", "--game", game.game_id, "--since", "soon", "--api-url", server.url, check=False
    )
    assert bad.returncode == 2 and "not a duration" in bad.stderr
