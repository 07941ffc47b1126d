"""Fulfilment through a real server: FulfillSession, the `fulfilled` filter, the overdue event
(from `toffeepay serve` and from `toffeepay worker` alone) and `fulfilled_at` in disputes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import toffeepay

from tests.conftest import ENGINES, make_database
from tests.receiver import Receiver
from tests.support import Api, Game, Server, outbox, run_async

OVERDUE = "session.fulfillment_overdue"
# A server whose paid sessions are overdue one second after payment; loopback receivers allowed.
GRACE_ENV = {"TOFFEEPAY_FULFILLMENT_GRACE": "1s", "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}


def paid_session(api: Api, game: Game, **overrides: Any) -> dict[str, Any]:
    created = api.create_session(game.game_id, **overrides)
    api.ok("SandboxService/PaySession", {"session_id": created["id"], "method": "card", "outcome": "succeeded"})
    return api.ok("PaymentService/GetSession", {"id": created["id"]})


def needs_attention(server: Server, game: Game) -> tuple[list[Any], int]:
    from toffeepay_server.services import fulfilment
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store.database import Database

    async def run() -> tuple[list[Any], int]:
        ctx = ServiceContext(
            db=Database(server.db_url, pool_size=1), public_url=server.url, fulfillment_grace=timedelta(seconds=1)
        )
        try:
            return await fulfilment.needs_attention(ctx, game.game_id, "sandbox")
        finally:
            await ctx.db.dispose()

    return run_async(run)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module", params=ENGINES)
def grace_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`toffeepay serve` on a fresh database of each engine, with a one-second fulfilment grace."""
    workdir = tmp_path_factory.mktemp(f"grace-{request.param}")
    for url in make_database(request.param, workdir):
        srv = Server(url, workdir, env=GRACE_ENV).start()
        try:
            yield srv
        finally:
            srv.stop()


# FulfillSession and the filter, on the shared server of each engine


def test_fulfil_a_paid_session_twice_gives_the_same_answer(api: Api, game: Game) -> None:
    session = paid_session(api, game)
    assert "fulfilled_at" not in session
    first = api.ok("PaymentService/FulfillSession", {"id": session["id"]})
    assert first["status"] == "paid" and first["fulfilled_at"] >= first["paid_at"]
    second = api.ok("PaymentService/FulfillSession", {"session_id": session["id"]})
    assert second == first
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["fulfilled_at"] == first["fulfilled_at"]


def test_fulfil_honours_the_idempotency_key(api: Api, game: Game) -> None:
    session = paid_session(api, game)
    headers = {"Idempotency-Key": f"grant-{session['id']}"}
    first = api.post("PaymentService/FulfillSession", {"id": session["id"]}, headers=headers)
    again = api.post("PaymentService/FulfillSession", {"id": session["id"]}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true" and again.content == first.content
    other = paid_session(api, game)
    api.refused(
        "PaymentService/FulfillSession",
        {"id": other["id"]},
        "idempotency_key_reused",
        "invalid_argument",
        headers=headers,
    )


def test_only_a_paid_session_can_be_fulfilled(api: Api, game: Game, server: Server) -> None:
    pending = api.create_session(game.game_id)
    api.refused("PaymentService/FulfillSession", {"id": pending["id"]}, "session_not_paid", "failed_precondition")
    failed = api.create_session(game.game_id)
    api.ok("SandboxService/PaySession", {"session_id": failed["id"], "method": "card", "outcome": "card_declined"})
    api.refused("PaymentService/FulfillSession", {"id": failed["id"]}, "session_not_paid", "failed_precondition")
    api.refused("PaymentService/FulfillSession", {"id": "sess_01kw1w89abcdefghijklmnopqr"}, "not_found", "not_found")
    api.refused("PaymentService/FulfillSession", {}, "invalid_argument", "invalid_argument")
    # Another game's key does not see the session.
    other = server.create_game()
    paid = paid_session(api, game)
    api.refused("PaymentService/FulfillSession", {"id": paid["id"]}, "not_found", "not_found", key=other.sandbox_key)
    assert "fulfilled_at" not in api.ok("PaymentService/GetSession", {"id": pending["id"]})


def test_list_sessions_by_fulfilment(api: Api, game: Game) -> None:
    granted = paid_session(api, game, user_id="filter_player")
    api.ok("PaymentService/FulfillSession", {"id": granted["id"]})
    waiting = paid_session(api, game, user_id="filter_player")
    pending = api.create_session(game.game_id, user_id="filter_player")

    def ids(**filters: Any) -> list[str]:
        listed = api.ok("PaymentService/ListSessions", {"user_id": "filter_player", **filters})
        assert listed["total"] == len(listed["sessions"])
        return [s["id"] for s in listed["sessions"]]

    assert ids(fulfilled=True) == [granted["id"]]
    assert ids(fulfilled=False) == [waiting["id"]]
    assert ids() == [pending["id"], waiting["id"], granted["id"]]
    assert ids(fulfilled=False, status="pending") == []
    api.refused("PaymentService/ListSessions", {"fulfilled": "maybe"}, "invalid_argument", "invalid_argument")


def test_sdk_fulfill_sync_and_async(server: Server, api: Api, game: Game) -> None:
    client = toffeepay.ToffeePay(game.sandbox_key, base_url=server.url)
    first = paid_session(api, game)
    fulfilled = client.sessions.fulfill(first["id"])
    assert fulfilled.id == first["id"] and fulfilled.fulfilled_at is not None
    assert client.sessions.fulfill(first["id"]).fulfilled_at == fulfilled.fulfilled_at
    pending = api.create_session(game.game_id)
    with pytest.raises(toffeepay.FailedPreconditionError) as refused:
        client.sessions.fulfill(pending["id"])
    assert refused.value.reason == "session_not_paid"
    waiting = paid_session(api, game)
    assert [s.id for s in client.sessions.list(fulfilled=False)] == [waiting["id"]]

    async def run() -> Any:
        async_client = toffeepay.AsyncToffeePay(game.sandbox_key, base_url=server.url)
        done = await async_client.sessions.fulfill(waiting["id"])
        listed = await async_client.sessions.list(fulfilled=True)
        return done, [s.id for s in listed]

    done, listed = asyncio.run(run())
    assert done.fulfilled_at is not None and listed == [waiting["id"], first["id"]]


def test_cli_lists_unfulfilled_sessions(server: Server, api: Api, game: Game) -> None:
    waiting = paid_session(api, game)
    granted = paid_session(api, game)
    api.ok("PaymentService/FulfillSession", {"id": granted["id"]})
    api.create_session(game.game_id)
    args = ("sessions", "list", "--game", game.game_id, "--unfulfilled", "--api-url", server.url)
    listed = json.loads(server.cli(*args, "--json").stdout)
    assert [s["id"] for s in listed["sessions"]] == [waiting["id"]] and listed["total"] == 1
    table = server.cli(*args).stdout
    assert waiting["id"] in table and granted["id"] not in table
    shown = json.loads(server.cli("sessions", "get", granted["id"], "--game", game.game_id, "--json").stdout)
    assert shown["fulfilled_at"]


# The overdue event and disputes, on a server with a short grace


def test_overdue_event_exactly_once_per_unfulfilled_paid_session(grace_server: Server, receiver: Receiver) -> None:
    game = grace_server.create_game()
    api = grace_server.api(game.sandbox_key)
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/hooks"), "events": [OVERDUE]})
    receiver.expect("/hooks", created["secret"])

    forgotten = paid_session(api, game, metadata={"order": "A-1"})
    granted = paid_session(api, game)
    api.ok("PaymentService/FulfillSession", {"id": granted["id"]})
    never_paid = api.create_session(game.game_id)

    [arrived] = receiver.wait_for("/hooks", 1)
    assert arrived.error is None and arrived.event is not None
    data = arrived.event["data"]
    assert arrived.event["event"] == OVERDUE
    assert data["session_id"] == forgotten["id"] and data["status"] == "paid"
    assert data["metadata"] == {"order": "A-1"} and data["paid_at"] == forgotten["paid_at"]
    assert "fulfilled_at" not in data and "previous_status" not in data

    # Many sweeps later (a later session's own overdue event has come), still one event each.
    later = paid_session(api, game)
    receiver.wait(lambda: any(r.event and r.event["data"]["session_id"] == later["id"] for r in receiver.at("/hooks")))
    assert [e["event"] for e in outbox(grace_server.db_url, forgotten["id"])].count(OVERDUE) == 1
    assert OVERDUE not in [e["event"] for e in outbox(grace_server.db_url, granted["id"])]
    assert OVERDUE not in [e["event"] for e in outbox(grace_server.db_url, never_paid["id"])]
    events = outbox(grace_server.db_url, forgotten["id"])
    assert [e["data"]["sequence"] for e in events] == list(range(1, len(events) + 1))

    # What a dashboard's "Needs attention" shows: the overdue ones, not the fulfilled or unpaid.
    attention, count = needs_attention(grace_server, game)
    assert [s.id for s in attention] == [later["id"], forgotten["id"]] and count == 2

    # Fulfilling late still works, and the session leaves the unfulfilled list.
    api.ok("PaymentService/FulfillSession", {"id": forgotten["id"]})
    unfulfilled = api.ok("PaymentService/ListSessions", {"fulfilled": False})["sessions"]
    assert [s["id"] for s in unfulfilled] == [later["id"]]


def test_dispute_webhook_carries_fulfilled_at(grace_server: Server, receiver: Receiver) -> None:
    game = grace_server.create_game()
    api = grace_server.api(game.sandbox_key)
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/disputes"), "events": ["dispute.created"]})
    receiver.expect("/disputes", created["secret"])

    granted = paid_session(api, game)
    fulfilled = api.ok("PaymentService/FulfillSession", {"id": granted["id"]})
    not_granted = paid_session(api, game)
    for session in (granted, not_granted):
        api.ok("SandboxService/CreateDispute", {"payment_id": session["payment_id"], "reason": "fraudulent"})

    arrived = receiver.wait_for("/disputes", 2)
    assert all(r.error is None and r.event is not None for r in arrived)
    by_session = {r.event["data"]["session_id"]: r.event["data"] for r in arrived if r.event}
    assert by_session[granted["id"]]["fulfilled_at"] == fulfilled["fulfilled_at"]
    assert "fulfilled_at" not in by_session[not_granted["id"]]


@pytest.fixture(params=ENGINES)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_worker_alone_reports_overdue_sessions(fresh_db: str, tmp_path: Path, receiver: Receiver) -> None:
    """An API process with no background work, and `toffeepay worker` beside it finding the session."""
    api_only = Server(fresh_db, tmp_path, env={**GRACE_ENV, "TOFFEEPAY_BACKGROUND": "0"}).start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", "worker"],
        env=api_only.env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        game = api_only.create_game()
        api = api_only.api(game.sandbox_key)
        created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/w"), "events": [OVERDUE]})
        receiver.expect("/w", created["secret"])
        session = paid_session(api, game)
        [arrived] = receiver.wait_for("/w", 1)
        assert arrived.event is not None and arrived.event["data"]["session_id"] == session["id"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        api_only.stop()
