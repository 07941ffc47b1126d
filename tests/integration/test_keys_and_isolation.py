"""Games, keys and modes (docs/api.md, Authentication): nothing crosses a game or a mode."""

from __future__ import annotations

import json

from tests.support import Api, Game, Server, sql


def test_games_create_prints_keys_once(server: Server) -> None:
    result = server.cli(
        "games", "create", "cli_game_" + server.db_url[-6:].replace("/", "_").replace(".", "_"), "--json"
    )
    created = json.loads(result.stdout)
    assert set(created) == {"game_id", "sandbox_api_key", "live_api_key"}
    assert created["sandbox_api_key"].startswith("sk_test_")
    assert created["live_api_key"].startswith("sk_live_")
    again = server.cli("games", "create", created["game_id"], "--json", check=False)
    assert again.returncode != 0
    server.api(created["sandbox_api_key"]).ok("PaymentService/ListSessions", {})
    # Only hashes are stored.
    stored = [
        r[0] for r in sql(server.db_url, "SELECT key_hash FROM api_keys WHERE game_id = :g", {"g": created["game_id"]})
    ]
    assert created["sandbox_api_key"] not in stored and len(stored) == 2


def test_invalid_game_ids_are_refused_by_the_cli(server: Server) -> None:
    for bad in ("Space Shooter", "x" * 65, "semi;colon"):
        assert server.cli("games", "create", bad, check=False).returncode != 0


def test_roll_and_revoke(server: Server, game: Game) -> None:
    rolled = json.loads(server.cli("keys", "roll", game.game_id, "--mode", "sandbox", "--json").stdout)["api_key"]
    old = server.api(game.sandbox_key)
    old.refused("PaymentService/ListSessions", {}, "unauthenticated", "unauthenticated")
    new = server.api(rolled)
    new.ok("PaymentService/ListSessions", {})
    server.api(game.live_key).ok("PaymentService/ListSessions", {})  # the other mode is untouched

    server.cli("keys", "revoke", rolled)
    new.refused("PaymentService/ListSessions", {}, "unauthenticated", "unauthenticated")
    listed = json.loads(server.cli("keys", "list", game.game_id, "--json").stdout)
    assert len(listed) == 3 and sum(k["revoked_at"] is None for k in listed) == 1
    assert all(not k["prefix"].endswith(rolled[12:]) for k in listed)


def test_games_cannot_see_each_other(server: Server, api: Api, game: Game) -> None:
    other = server.create_game()
    theirs = server.api(other.sandbox_key)
    created = api.create_session(game.game_id)
    for rpc in ("GetSession", "GetSessionStatus", "CancelSession"):
        theirs.refused(f"PaymentService/{rpc}", {"id": created["id"]}, "not_found", "not_found")
    theirs.refused(
        "PaymentService/CreateSession",
        {"game_id": game.game_id, "user_id": "p", "item": {"title": "x", "price": 1, "currency": "USD"}},
        "invalid_game_id",
        "permission_denied",
    )
    assert theirs.ok("PaymentService/ListSessions", {})["total"] == 0
    assert api.ok("PaymentService/GetSession", {"id": created["id"]})["status"] == "pending"


def test_modes_cannot_see_each_other(server: Server, api: Api, game: Game) -> None:
    live = server.api(game.live_key)
    sandbox_session = api.create_session(game.game_id)
    live_session = live.create_session(game.game_id)
    live.refused("PaymentService/GetSession", {"id": sandbox_session["id"]}, "not_found", "not_found")
    api.refused("PaymentService/GetSession", {"id": live_session["id"]}, "not_found", "not_found")
    assert [s["id"] for s in live.ok("PaymentService/ListSessions", {})["sessions"]] == [live_session["id"]]
    assert [s["id"] for s in api.ok("PaymentService/ListSessions", {})["sessions"]] == [sandbox_session["id"]]
    modes = {r[0] for r in sql(server.db_url, "SELECT mode FROM events WHERE game_id = :g", {"g": game.game_id})}
    assert modes == {"sandbox", "live"}
