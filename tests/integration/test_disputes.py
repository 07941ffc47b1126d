"""ListDisputes as the Disputes guide describes it: payment_id, from, to, limit (default 100, max 250), offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.support import Api, Game, Server

DISPUTES = 106


@pytest.fixture
def disputed(api: Api, game: Game) -> dict[str, Any]:
    """Two succeeded sandbox payments with 104 and 2 disputes, and every dispute as listed (newest first)."""
    payments = []
    for _ in range(2):
        session = api.create_session(game.game_id)
        payments.append(api.ok("SandboxService/PaySession", {"session_id": session["id"]}))
    for i in range(DISPUTES):
        payment = payments[1] if i in (10, 50) else payments[0]
        api.ok(
            "SandboxService/CreateDispute",
            {"payment_id": payment["id"], "reason": f"reason {i}", "amount": 1 + i % 400},
        )
    everything = api.ok("PaymentService/ListDisputes", {"limit": 250})
    return {"payments": payments, "disputes": everything["disputes"]}


def ids(listed: dict[str, Any]) -> list[str]:
    return [d["id"] for d in listed["disputes"]]


def at(dispute: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(dispute["created_at"])


def test_limits_offsets_and_order(api: Api, disputed: dict[str, Any]) -> None:
    everything = disputed["disputes"]
    assert len(everything) == DISPUTES
    assert [d["reason"] for d in everything] == [f"reason {i}" for i in reversed(range(DISPUTES))]  # newest first
    assert everything == sorted(everything, key=lambda d: (at(d), d["id"]), reverse=True)

    default = api.ok("PaymentService/ListDisputes", {})
    assert (len(default["disputes"]), default["total"], default["has_more"]) == (100, DISPUTES, True)
    assert default["disputes"] == everything[:100]
    assert api.ok("PaymentService/ListDisputes", {"limit": 0})["disputes"] == everything[:100]
    rest = api.ok("PaymentService/ListDisputes", {"offset": 100})
    assert (rest["disputes"], rest["total"], rest["has_more"]) == (everything[100:], DISPUTES, False)
    page = api.ok("PaymentService/ListDisputes", {"limit": 5, "offset": 3})
    assert (page["disputes"], page["has_more"]) == (everything[3:8], True)
    assert api.ok("PaymentService/ListDisputes", {"limit": 250, "offset": DISPUTES}) == {
        "disputes": [],
        "total": DISPUTES,
        "has_more": False,
    }
    assert (
        api.ok("PaymentService/ListDisputes", {"limit": "250"})["disputes"] == everything
    )  # proto3 JSON: "250" reads as 250

    for limit in (251, 1000, -1):
        api.refused("PaymentService/ListDisputes", {"limit": limit}, "invalid_limit", "invalid_argument")
    api.refused("PaymentService/ListDisputes", {"offset": -1}, "invalid_offset", "invalid_argument")


def test_filter_by_payment(server: Server, api: Api, game: Game, disputed: dict[str, Any]) -> None:
    first, second = disputed["payments"]
    of_second = api.ok("PaymentService/ListDisputes", {"payment_id": second["id"]})
    assert ids(of_second) == [d["id"] for d in disputed["disputes"] if d["payment_id"] == second["id"]]
    assert [d["reason"] for d in of_second["disputes"]] == ["reason 50", "reason 10"]
    assert (of_second["total"], of_second["has_more"]) == (2, False)
    of_first = api.ok("PaymentService/ListDisputes", {"payment_id": first["id"], "limit": 100})
    assert (len(of_first["disputes"]), of_first["total"], of_first["has_more"]) == (100, DISPUTES - 2, True)
    unknown = api.ok("PaymentService/ListDisputes", {"payment_id": "pay_01kw1w89abcdefghijklmnopqr"})
    assert unknown == {"disputes": [], "total": 0, "has_more": False}
    # Another game's key, and this game's live key, see none of them.
    assert (
        server.api(server.create_game().sandbox_key).ok("PaymentService/ListDisputes", {"payment_id": first["id"]})[
            "total"
        ]
        == 0
    )
    assert server.api(game.live_key).ok("PaymentService/ListDisputes", {})["total"] == 0


def test_filter_by_time(api: Api, disputed: dict[str, Any]) -> None:
    everything = disputed["disputes"]
    newest, oldest = everything[0]["created_at"], everything[-1]["created_at"]
    assert ids(api.ok("PaymentService/ListDisputes", {"from": oldest, "to": newest, "limit": 250})) == ids(
        {"disputes": everything}
    )
    # Both bounds are inclusive.
    lower, upper = everything[60]["created_at"], everything[20]["created_at"]
    window = api.ok("PaymentService/ListDisputes", {"from": lower, "to": upper, "limit": 250})
    expected = [d["id"] for d in everything if at(everything[60]) <= at(d) <= at(everything[20])]
    assert ids(window) == expected and window["total"] == len(expected) and everything[20]["id"] in expected
    exact = api.ok("PaymentService/ListDisputes", {"from": upper, "to": upper})
    assert everything[20]["id"] in ids(exact)
    after = api.ok("PaymentService/ListDisputes", {"from": lower, "limit": 250})
    assert ids(after) == [d["id"] for d in everything if at(d) >= at(everything[60])]
    before = api.ok("PaymentService/ListDisputes", {"to": lower, "limit": 250})
    assert ids(before) == [d["id"] for d in everything if at(d) <= at(everything[60])]
    assert api.ok("PaymentService/ListDisputes", {"from": "2099-01-01T00:00:00Z"}) == {
        "disputes": [],
        "total": 0,
        "has_more": False,
    }
    assert api.ok("PaymentService/ListDisputes", {"to": "2000-01-01T00:00:00Z"})["total"] == 0
    combined = api.ok(
        "PaymentService/ListDisputes", {"payment_id": disputed["payments"][1]["id"], "to": everything[60]["created_at"]}
    )
    assert [d["reason"] for d in combined["disputes"]] == ["reason 10"]

    for bad in (
        {"from": "yesterday"},
        {"to": "2023-13-45T00:00:00Z"},
        {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
        {"from": 5},
    ):
        api.refused("PaymentService/ListDisputes", bad, "invalid_time_range", "invalid_argument")
