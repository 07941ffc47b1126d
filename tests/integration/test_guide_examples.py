"""Every request and response example of the Payments and Getting Started guides, sent verbatim to a real server."""

from __future__ import annotations

import json
import re

from tests.support import Api, Game, png_data_url

ID = re.compile(r"^sess_[0-9a-z]{26}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# The guides' CreateSession body, with real image data where they write "...".
GUIDE_CREATE = """{
"game_id": "space_shooter",
"user_id": "player_42",
"item": {
"title": "50 Gold Coins",
"price": 499,
"currency": "USD",
"image": "data:image/png;base64,..."
},
"return_url": "mygame://payment-complete"
}"""


def guide_body(game_id: str) -> bytes:
    body = GUIDE_CREATE.replace("data:image/png;base64,...", png_data_url())
    return body.replace('"space_shooter"', json.dumps(game_id)).encode()


def test_create_session_answers_both_spellings(api: Api, game: Game) -> None:
    response = api.post("PaymentService/CreateSession", content=guide_body(game.game_id))
    assert response.status_code == 200, response.text
    created = response.json()
    assert ID.match(created["id"])
    # The Payments guide reads id/url, the Getting Started guide session_id/payment_url.
    assert created["session_id"] == created["id"]
    assert created["payment_url"] == created["url"]
    assert created["url"].endswith("/" + created["id"])


def test_get_session_and_status(api: Api, game: Game) -> None:
    created = api.post("PaymentService/CreateSession", content=guide_body(game.game_id)).json()
    session = api.ok("PaymentService/GetSession", {"id": created["id"]})
    assert session["id"] == created["id"]
    assert session["status"] == "pending"
    assert session["user_id"] == "player_42"
    assert session["game_id"] == game.game_id
    assert session["item"] == {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
    assert session["return_url"] == "mygame://payment-complete"
    assert RFC3339.match(session["created_at"]) and RFC3339.match(session["expires_at"])
    # Unset optional fields are absent, never null; the image is not echoed.
    for absent in ("payment_id", "paid_at", "failed_at", "cancelled_at", "expired_at"):
        assert absent not in session
    assert "image" not in session["item"]
    assert None not in session.values()

    # The Payments guide asks with "id", the Getting Started guide with "session_id".
    assert api.ok("PaymentService/GetSessionStatus", {"id": created["id"]}) == {
        "id": created["id"],
        "session_id": created["id"],
        "status": "pending",
    }
    assert api.ok("PaymentService/GetSessionStatus", {"session_id": created["id"]})["session_id"] == created["id"]


def test_cancel_session_returns_empty_object(api: Api, game: Game) -> None:
    created = api.create_session(game.game_id)
    response = api.post("PaymentService/CancelSession", {"id": created["id"]})
    assert response.status_code == 200
    assert response.content == b"{}"
    session = api.ok("PaymentService/GetSession", {"id": created["id"]})
    assert session["status"] == "cancelled"
    assert RFC3339.match(session["cancelled_at"])


def test_list_examples(api: Api, game: Game) -> None:
    listed = api.ok(
        "PaymentService/ListSessions",
        {"game_id": game.game_id, "user_id": "player_42", "status": "paid", "limit": 50, "offset": 0},
    )
    assert listed == {"sessions": [], "total": 0, "has_more": False}
    payments = api.ok(
        "PaymentService/ListPayments", {"game_id": game.game_id, "user_id": "player_42", "limit": 50, "offset": 0}
    )
    assert payments == {"payments": [], "total": 0, "has_more": False}
    assert api.ok("PaymentService/ListDisputes", {}) == {"disputes": [], "total": 0, "has_more": False}
    api.refused("PaymentService/GetPayment", {"id": "pay_xyz789"}, "not_found", "not_found")
