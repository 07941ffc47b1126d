"""Every reason code of docs/api.md (Errors), through a real server; none is ever a 5xx."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support import Api, Game, png_bytes, png_data_url

CREATE = "PaymentService/CreateSession"
GIF = base64.b64encode(
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
).decode()
JPEG = base64.b64encode(
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
).decode()


def body(game: Game, **item_or_top: Any) -> dict[str, Any]:
    item = {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
    top: dict[str, Any] = {"game_id": game.game_id, "user_id": "player_42", "item": item}
    for key, value in item_or_top.items():
        if key in ("title", "price", "currency", "image"):
            item[key] = value
        else:
            top[key] = value
    return top


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Token sk_test_x", "Bearer sk_test_unknown", "Bearer not_a_key"]
)
def test_unauthenticated(api: Api, game: Game, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = api.client.post(f"{api.base_url}/pay.v1.{CREATE}", json=body(game), headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.json()["message"].startswith("unauthenticated: ")


def test_invalid_game_id(api: Api, game: Game) -> None:
    api.refused(CREATE, body(game, game_id="another_game"), "invalid_game_id", "permission_denied")
    api.refused("PaymentService/ListSessions", {"game_id": "another_game"}, "invalid_game_id", "permission_denied")
    api.refused("PaymentService/ListPayments", {"game_id": "another_game"}, "invalid_game_id", "permission_denied")
    assert api.post(CREATE, body(game, game_id="another_game")).status_code == 403


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"game_id": "g", "bogus": 1}', "unknown field 'bogus'"),
        (b'{"game_id": "g", "item": {"title": "x", "colour": "red"}}', "unknown field 'colour'"),
    ],
)
def test_invalid_argument_malformed(api: Api, raw: bytes, fragment: str) -> None:
    error = api.refused(CREATE, None, "invalid_argument", "invalid_argument", content=raw)
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"user_id": ""}, "user_id"),
        ({"title": ""}, "item.title"),
        ({"game_id": ""}, "game_id"),
        ({"title": "x" * 201}, "item.title"),
    ],
)
def test_invalid_argument_missing(api: Api, game: Game, overrides: dict[str, Any], fragment: str) -> None:
    error = api.refused(CREATE, body(game, **overrides), "invalid_argument", "invalid_argument")
    assert fragment in error["message"]


def test_missing_item(api: Api, game: Game) -> None:
    api.refused(CREATE, {"game_id": game.game_id, "user_id": "p"}, "invalid_argument", "invalid_argument")


@pytest.mark.parametrize("currency", ["XXX", "usd", "US", "DEM", "", "EURO"])
def test_invalid_currency(api: Api, game: Game, currency: str) -> None:
    api.refused(CREATE, body(game, currency=currency), "invalid_currency", "invalid_argument")


@pytest.mark.parametrize("price", [0, -1, 100_000_000, 4.99, "abc", 2**40])
def test_invalid_price(api: Api, game: Game, price: Any) -> None:
    api.refused(CREATE, body(game, price=price), "invalid_price", "invalid_argument")


def test_price_bounds_accepted(api: Api, game: Game) -> None:
    api.ok(CREATE, body(game, price=1))
    api.ok(CREATE, body(game, price=99_999_999))
    api.ok(CREATE, body(game, price=500, currency="JPY"))
    api.ok(CREATE, body(game, price=1500, currency="KWD"))


@pytest.mark.parametrize(
    "image",
    [
        "data:image/png;base64,!!!not-base64!!!",
        f"data:image/gif;base64,{GIF}",
        f"data:image/png;base64,{GIF}",
        f"data:image/png;base64,{JPEG}",
        "data:image/png;base64," + base64.b64encode(b"just some text, not an image").decode(),
        "data:image/png;base64," + base64.b64encode(png_bytes() + b"\x00" * (300 * 1024)).decode(),
        "data:image/png," + "abc",
        "http://yourgame.com/images/gold-coins.png",
        "ftp://yourgame.com/gold.png",
        "gold-coins.png",
        "https://[",
        "https://[::1",
    ],
)
def test_invalid_image(api: Api, game: Game, image: str) -> None:
    api.refused(CREATE, body(game, image=image), "invalid_image", "invalid_argument")


def test_valid_images(api: Api, game: Game) -> None:
    api.ok(CREATE, body(game, image=png_data_url()))
    api.ok(CREATE, body(game, image=f"data:image/jpeg;base64,{JPEG}"))
    api.ok(CREATE, body(game, image="https://yourgame.com/images/gold-coins.png"))


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "vbscript:msgbox",
        "blob:https://x/1",
        "about:blank",
        "mygame://" + "a" * 2048,
        "no-scheme/path",
        "https:///no-host",
        "https://[",
    ],
)
def test_invalid_return_url(api: Api, game: Game, url: str) -> None:
    api.refused(CREATE, body(game, return_url=url), "invalid_return_url", "invalid_argument")


def test_live_return_url_needs_https_except_localhost(server: Any, game: Game) -> None:
    live = server.api(game.live_key)
    live.refused(CREATE, body(game, return_url="http://game.example/back"), "invalid_return_url", "invalid_argument")
    live.ok(CREATE, body(game, return_url="http://localhost:3000/back"))
    live.ok(CREATE, body(game, return_url="https://game.example/back"))
    live.ok(CREATE, body(game, return_url="mygame://payment-complete"))
    server.api(game.sandbox_key).ok(CREATE, body(game, return_url="http://game.example/back"))


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(21)},
        {"k" * 41: "v"},
        {"": "v"},
        {"k": "v" * 501},
        {"k": 5},
    ],
)
def test_invalid_metadata(api: Api, game: Game, metadata: dict[str, Any]) -> None:
    api.refused(CREATE, body(game, metadata=metadata), "invalid_metadata", "invalid_argument")


def test_metadata_limits_accepted(api: Api, game: Game) -> None:
    api.ok(CREATE, body(game, metadata={f"k{i:02d}" + "x" * 37: "v" * 500 for i in range(20)}))


@pytest.mark.parametrize(
    ("rpc", "request_body", "reason"),
    [
        ("PaymentService/ListSessions", {"limit": 251}, "invalid_limit"),
        ("PaymentService/ListSessions", {"limit": -1}, "invalid_limit"),
        ("PaymentService/ListPayments", {"limit": 300}, "invalid_limit"),
        ("PaymentService/ListDisputes", {"limit": 251}, "invalid_limit"),
        ("PaymentService/ListSessions", {"limit": "many"}, "invalid_limit"),
        ("PaymentService/ListSessions", {"offset": -1}, "invalid_offset"),
        ("PaymentService/ListDisputes", {"offset": -5}, "invalid_offset"),
        ("PaymentService/ListSessions", {"status": "bogus"}, "invalid_status"),
        ("PaymentService/ListSessions", {"status": "PAID"}, "invalid_status"),
        ("PaymentService/ListSessions", {"from": "yesterday"}, "invalid_time_range"),
        ("PaymentService/ListDisputes", {"to": "2023-13-45T00:00:00Z"}, "invalid_time_range"),
        (
            "PaymentService/ListDisputes",
            {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
            "invalid_time_range",
        ),
        (
            "PaymentService/ListPayments",
            {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
            "invalid_time_range",
        ),
    ],
)
def test_invalid_list_arguments(api: Api, rpc: str, request_body: dict[str, Any], reason: str) -> None:
    api.refused(rpc, request_body, reason, "invalid_argument")


def test_limits_accepted(api: Api) -> None:
    assert api.ok("PaymentService/ListSessions", {"limit": 250})["total"] == 0
    assert api.ok("PaymentService/ListDisputes", {"limit": 0, "offset": 0})["has_more"] is False


@pytest.mark.parametrize("expires_at", ["2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "soon"])
def test_invalid_expires_at(api: Api, game: Game, expires_at: str) -> None:
    api.refused(CREATE, body(game, expires_at=expires_at), "invalid_expires_at", "invalid_argument")


def test_not_found(api: Api) -> None:
    for rpc in ("GetSession", "GetSessionStatus", "CancelSession"):
        api.refused(f"PaymentService/{rpc}", {"id": "sess_01kw1w89abcdefghijklmnopqr"}, "not_found", "not_found")
    api.refused("PaymentService/GetPayment", {"payment_id": "pay_01kw1w89abcdefghijklmnopqr"}, "not_found", "not_found")
    api.refused("PaymentService/GetSession", {}, "invalid_argument", "invalid_argument")
    api.refused(
        "PaymentService/GetSession", {"id": "sess_a", "session_id": "sess_b"}, "invalid_argument", "invalid_argument"
    )


def test_request_too_large(api: Api, game: Game) -> None:
    big = b'{"game_id": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = api.post(CREATE, content=big)
    assert response.status_code == 413
    assert response.json()["code"] == "resource_exhausted"
    assert response.json()["message"].startswith("request_too_large: ")

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(20):
            yield b"x" * 65536

    streamed = api.client.post(
        f"{api.base_url}/pay.v1.{CREATE}",
        content=chunks(),
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["code"] == "resource_exhausted"


def test_unsupported_content_type_is_not_a_server_error(api: Api, game: Game) -> None:
    response = api.post(CREATE, content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status_code < 500
