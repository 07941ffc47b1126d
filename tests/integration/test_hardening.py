"""Nothing a client sends stops the server or draws a 5xx: a real `toffeepay serve` on both engines."""

from __future__ import annotations

import gzip
import socket
from typing import Any

import httpx
import pytest
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp
from toffeepay._proto.pay.v1 import payment_pb

from tests.stripe_support import NOTIFICATION_PATH
from tests.support import Api, Game, Server

CONTROL = "\x00"


def raw_request(server: Server, head: bytes, body: bytes = b"", *, half_close: bool = True) -> bytes:
    """Send bytes as they are (no client fixing the framing) and read the answer until the server closes.

    `half_close` ends the sending side after the bytes, so a body shorter than announced ends there.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def api_head(api: Api, rpc: str, *extra: bytes) -> bytes:
    lines = [
        f"POST /pay.v1.{rpc} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        f"Authorization: Bearer {api.key}".encode(),
        b"Content-Type: application/json",
        b"Connection: close",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def session_body(game: Game, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "game_id": game.game_id,
        "user_id": "player_42",
        "item": {"title": "50 Gold Coins", "price": 499, "currency": "USD"},
        "return_url": "mygame://payment-complete",
    }
    body.update(overrides)
    return body


def test_a_deeply_nested_body_is_refused_and_the_server_goes_on(server: Server, api: Api, game: Game) -> None:
    attack = b'{"user_id": ' + b"[" * 15_000 + b"]" * 15_000 + b"}"
    for rpc in ("PaymentService/CreateSession", "PaymentService/ListSessions", "WebhookService/CreateEndpoint"):
        api.refused(rpc, None, "invalid_argument", "invalid_argument", content=attack)
    # Compressed, the same body is refused once inflated.
    api.refused(
        "PaymentService/CreateSession",
        None,
        "invalid_argument",
        "invalid_argument",
        content=gzip.compress(attack),
        headers={"Content-Encoding": "gzip"},
    )
    # Just under the limit is only a wrong type, not a refusal for depth.
    shallow = b'{"metadata": {"k": ' + b"[" * 30 + b"]" * 30 + b"}}"
    error = api.refused("PaymentService/CreateSession", None, "invalid_metadata", "invalid_argument", content=shallow)
    assert "nested" not in error["message"]
    # The payment page's forms and the processor's notifications are guarded the same way.
    page = httpx.post(f"{server.url}/sess_01h0000000000000000000000/pay", content=attack)
    assert page.status_code == 400 and "nested deeper than 32" in page.json()["message"]
    notification = httpx.post(
        f"{server.url}{NOTIFICATION_PATH}", content=attack, headers={"Content-Type": "application/json"}
    )
    assert notification.status_code == 400 and "nested deeper than 32" in notification.json()["message"]
    # And the next request is answered.
    assert api.create_session(game.game_id)["id"].startswith("sess_")


@pytest.mark.parametrize(
    ("field", "overrides", "reason"),
    [
        ("user_id", {"user_id": f"player{CONTROL}42"}, "invalid_argument"),
        ("item.title", {"item": {"title": "Gold\x1b[31m", "price": 499, "currency": "USD"}}, "invalid_argument"),
        ("item.title", {"item": {"title": "Gold\u0085", "price": 499, "currency": "USD"}}, "invalid_argument"),
        ("metadata key", {"metadata": {f"k{CONTROL}": "v"}}, "invalid_metadata"),
        ("metadata['order']", {"metadata": {"order": f"42{CONTROL}"}}, "invalid_metadata"),
        ("game_id", {"game_id": f"game{CONTROL}"}, "invalid_argument"),
    ],
)
def test_control_characters_are_refused_naming_the_field(
    api: Api, game: Game, field: str, overrides: dict[str, Any], reason: str
) -> None:
    body = session_body(game, **overrides)
    error = api.refused("PaymentService/CreateSession", body, reason, "invalid_argument")
    assert field in error["message"], error


def test_control_characters_in_ids_and_descriptions_are_refused(api: Api, game: Game) -> None:
    for rpc, body, field in [
        ("PaymentService/GetSession", {"id": f"sess_{CONTROL}"}, "id"),
        ("PaymentService/GetPayment", {"payment_id": "pay_\x7f"}, "payment_id"),
        ("PaymentService/ListSessions", {"user_id": f"p{CONTROL}"}, "user_id"),
        ("SandboxService/PaySession", {"session_id": f"sess_{CONTROL}"}, "session_id"),
        (
            "WebhookService/CreateEndpoint",
            {"url": "https://game.example/hooks", "description": f"ops{CONTROL}"},
            "description",
        ),
    ]:
        error = api.refused(rpc, body, "invalid_argument", "invalid_argument")
        assert field in error["message"], error
    # Binary protobuf is checked the same way.
    message = payment_pb.GetSessionRequest(id=f"sess_{CONTROL}").to_binary()
    response = api.post("PaymentService/GetSession", content=message, headers={"Content-Type": "application/proto"})
    assert response.status_code == 400, response.text


def test_urls_with_digits_other_than_ascii_are_refused(api: Api, game: Game) -> None:
    fullwidth = "\uff14\uff14\uff13"  # "443" in fullwidth digits
    api.refused(
        "PaymentService/CreateSession",
        session_body(game, return_url=f"https://game.example:{fullwidth}/done"),
        "invalid_return_url",
        "invalid_argument",
    )
    api.refused(
        "PaymentService/CreateSession",
        session_body(
            game, item={"title": "x", "price": 1, "currency": "USD", "image": f"https://cdn.example:{fullwidth}/a.png"}
        ),
        "invalid_image",
        "invalid_argument",
    )
    api.refused(
        "WebhookService/CreateEndpoint",
        {"url": f"https://hooks.example:{fullwidth}/in"},
        "invalid_url",
        "invalid_argument",
    )


def test_header_values_that_are_not_utf8_are_refused(server: Server, api: Api) -> None:
    answer = raw_request(
        server,
        api_head(api, "PaymentService/CreateSession", b"Idempotency-Key: caf\xe9", b"Content-Length: 2"),
        b"{}",
        half_close=False,
    )
    assert status_of(answer) == 400, answer
    assert b"invalid_idempotency_key: header idempotency-key is not valid UTF-8" in answer
    answer = raw_request(
        server,
        api_head(api, "PaymentService/GetSession", b"X-Trace: \xff\xfe", b"Content-Length: 2"),
        b"{}",
        half_close=False,
    )
    assert status_of(answer) == 400, answer
    assert b"invalid_argument: header x-trace is not valid UTF-8" in answer


def test_a_body_shorter_than_its_length_or_badly_chunked_is_refused(server: Server, api: Api) -> None:
    short = raw_request(server, api_head(api, "PaymentService/GetSession", b"Content-Length: 40"), b"{}")
    assert status_of(short) == 400, short
    assert b"invalid_argument" in short
    chunked = raw_request(
        server, api_head(api, "PaymentService/GetSession", b"Transfer-Encoding: chunked"), b"zz\r\n{}\r\n0\r\n\r\n"
    )
    assert status_of(chunked) == 400, chunked


def test_an_unknown_content_encoding_is_a_client_error(api: Api) -> None:
    response = api.post(
        "PaymentService/GetSession",
        content=b"{}",
        headers={"Content-Encoding": "br2", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["message"].startswith("unsupported_encoding: ")


def test_an_out_of_range_timestamp_in_binary_protobuf_is_invalid(api: Api) -> None:
    for seconds in (10**15, -(10**15)):
        message = payment_pb.ListSessionsRequest(from_=Timestamp(seconds=seconds)).to_binary()
        response = api.post(
            "PaymentService/ListSessions", content=message, headers={"Content-Type": "application/proto"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["message"].startswith("invalid_time_range: "), response.text
    message = payment_pb.ListSessionsRequest(from_=Timestamp(seconds=0, nanos=-5)).to_binary()
    response = api.post("PaymentService/ListSessions", content=message, headers={"Content-Type": "application/proto"})
    assert response.status_code == 400, response.text


def test_a_path_with_control_characters_is_refused(server: Server) -> None:
    response = httpx.get(f"{server.url}/sess_abc%00def")
    assert response.status_code == 400
    response = httpx.get(f"{server.url}/sess_abc%00def/status")
    assert response.status_code == 400
