"""Sessions: create, read, cancel, list, expiry, and the outbox rows each change writes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from tests.support import Api, Game, Server, lapse, outbox


def test_json_accepts_lower_camel_case_and_string_numbers(api: Api, game: Game) -> None:
    created = api.ok(
        "PaymentService/CreateSession",
        {
            "gameId": game.game_id,
            "userId": "p1",
            "item": {"title": "Gems", "price": "250", "currency": "EUR"},
            "returnUrl": "https://game.example/done?x=1",
        },
    )
    session = api.ok("PaymentService/GetSession", {"sessionId": created["id"]})
    assert session["item"] == {"title": "Gems", "price": 250, "currency": "EUR"}
    assert session["return_url"] == "https://game.example/done?x=1"


def test_metadata_and_expires_at_round_trip(api: Api, game: Game) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    created = api.create_session(
        game.game_id, metadata={"order": "A-1", "bundle": "starter"}, expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    session = api.ok("PaymentService/GetSession", {"id": created["id"]})
    assert session["metadata"] == {"order": "A-1", "bundle": "starter"}
    assert session["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_default_lifetime_is_thirty_minutes(api: Api, game: Game) -> None:
    created = api.create_session(game.game_id)
    session = api.ok("PaymentService/GetSession", {"id": created["id"]})
    created_at = datetime.fromisoformat(session["created_at"])
    expires_at = datetime.fromisoformat(session["expires_at"])
    assert abs((expires_at - created_at) - timedelta(minutes=30)) < timedelta(seconds=1)


def test_list_pages_newest_first_with_filters(api: Api, game: Game) -> None:
    ids = [api.create_session(game.game_id, user_id="pager")["id"] for _ in range(5)]
    api.create_session(game.game_id, user_id="someone_else")
    first = api.ok("PaymentService/ListSessions", {"user_id": "pager", "limit": 2})
    assert [s["id"] for s in first["sessions"]] == ids[::-1][:2]
    assert first["total"] == 5 and first["has_more"] is True
    last = api.ok("PaymentService/ListSessions", {"user_id": "pager", "limit": 2, "offset": 4})
    assert [s["id"] for s in last["sessions"]] == [ids[0]]
    assert last["has_more"] is False
    beyond = api.ok("PaymentService/ListSessions", {"user_id": "pager", "offset": 10})
    assert beyond == {"sessions": [], "total": 5, "has_more": False}
    assert api.ok("PaymentService/ListSessions", {})["total"] == 6

    api.ok("PaymentService/CancelSession", {"id": ids[1]})
    cancelled = api.ok("PaymentService/ListSessions", {"status": "cancelled"})
    assert [s["id"] for s in cancelled["sessions"]] == [ids[1]]
    assert api.ok("PaymentService/ListSessions", {"status": "pending", "user_id": "pager"})["total"] == 4


def test_from_and_to_are_inclusive(api: Api, game: Game) -> None:
    ids = [api.create_session(game.game_id)["id"] for _ in range(3)]
    sessions = {s["id"]: s for s in api.ok("PaymentService/ListSessions", {})["sessions"]}
    middle = sessions[ids[1]]["created_at"]
    only_middle = api.ok("PaymentService/ListSessions", {"from": middle, "to": middle})
    assert [s["id"] for s in only_middle["sessions"]] == [ids[1]]
    since = api.ok("PaymentService/ListSessions", {"from": middle})
    assert [s["id"] for s in since["sessions"]] == [ids[2], ids[1]]
    until = api.ok("PaymentService/ListSessions", {"to": middle})
    assert [s["id"] for s in until["sessions"]] == [ids[1], ids[0]]


def test_connect_get_for_read_only_rpcs(api: Api, game: Game, server: Server) -> None:
    created = api.create_session(game.game_id)
    response = api.client.get(
        f"{server.url}/pay.v1.PaymentService/GetSessionStatus",
        params={"encoding": "json", "message": f'{{"id":"{created["id"]}"}}'},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"


def test_events_are_written_with_each_change(api: Api, game: Game, server: Server) -> None:
    created = api.create_session(game.game_id, metadata={"order": "7"})
    api.ok("PaymentService/CancelSession", {"id": created["id"]})
    first, second = outbox(server.db_url, created["id"])
    assert first["event"] == "session.created"
    assert first["data"]["sequence"] == 1 and "previous_status" not in first["data"]
    assert first["data"]["status"] == "pending"
    assert first["data"]["item"] == {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
    assert first["data"]["metadata"] == {"order": "7"}
    assert first["mode"] == "sandbox"
    assert second["event"] == "session.cancelled"
    assert second["data"]["sequence"] == 2
    assert second["data"]["previous_status"] == "pending"
    assert second["data"]["session_id"] == created["id"]
    assert "cancelled_at" in second["data"]


def test_cancel_is_refused_once_final(api: Api, game: Game) -> None:
    created = api.create_session(game.game_id)
    api.ok("PaymentService/CancelSession", {"session_id": created["id"]})
    api.refused("PaymentService/CancelSession", {"id": created["id"]}, "session_not_pending", "failed_precondition")


def test_concurrent_cancels_make_one_transition(api: Api, game: Game, server: Server) -> None:
    created = api.create_session(game.game_id)
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: api.post("PaymentService/CancelSession", {"id": created["id"]}), range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, [r.text for r in responses]
    assert all(r.json()["message"].startswith("session_not_pending") for r in responses if r.status_code != 200)
    assert [e["event"] for e in outbox(server.db_url, created["id"])] == ["session.created", "session.cancelled"]


def test_lapsed_session_reads_expired_at_once_and_sweeper_records_it(api: Api, game: Game, server: Server) -> None:
    created = api.create_session(game.game_id)
    lapse(server.db_url, created["id"])
    session = api.ok("PaymentService/GetSession", {"id": created["id"]})
    assert session["status"] == "expired"
    assert session["expired_at"] == session["expires_at"]
    assert api.ok("PaymentService/ListSessions", {"status": "expired"})["total"] == 1
    assert api.ok("PaymentService/ListSessions", {"status": "pending"})["total"] == 0
    api.refused("PaymentService/CancelSession", {"id": created["id"]}, "session_expired", "failed_precondition")

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = outbox(server.db_url, created["id"])
        if len(events) == 2:
            break
        time.sleep(0.1)
    assert [e["event"] for e in events] == ["session.created", "session.expired"]
    expired = events[1]["data"]
    assert expired["previous_status"] == "pending" and expired["sequence"] == 2
    assert expired["expired_at"] == session["expired_at"]
    # After the sweep the stored session reads the same.
    assert api.ok("PaymentService/GetSession", {"id": created["id"]}) == session
