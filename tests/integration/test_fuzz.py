"""Fuzzing every RPC: random bodies (JSON and binary protobuf), headers and HTTP framing.

Whatever arrives, the answer is never a 5xx and the server keeps answering. Sized to run
in seconds per engine; raise FUZZ_EXAMPLES locally for a longer hunt.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toffeepay._proto.pay.v1 import (
    health_connect,
    health_pb,
    payment_connect,
    payment_pb,
    resources_pb,
    sandbox_connect,
    sandbox_pb,
    webhook_connect,
    webhook_pb,
)

from tests.support import Api, Game, Server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
_MODULES = (payment_pb, webhook_pb, sandbox_pb, health_pb, resources_pb)


def _message_class(name: str) -> Any:
    for module in _MODULES:
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(name)


def _rpcs() -> list[tuple[str, Any]]:
    found = []
    for service in (
        payment_connect.PaymentService,
        webhook_connect.WebhookService,
        sandbox_connect.SandboxService,
        health_connect.HealthService,
    ):
        desc = service.desc()
        for method in desc.methods:
            found.append((f"/{desc.type_name}/{method.name}", _message_class(method.input.name)))
    return found


RPCS = _rpcs()

text = st.text(max_size=30) | st.sampled_from(["", "sess_", "pay_", "whsec_x", "\x00", "\u0085", "\uff18\uff10"])
scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def bodies(draw: st.DrawFn, message_class: Any) -> dict[str, Any]:
    """A JSON object using the request's own field names, with values of any type."""
    names = [field.name for field in message_class.desc().fields] + ["unknown_field"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    return {name: draw(values) for name in chosen}


HEADER_VALUES = st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b) | st.sampled_from(
    [b"caf\xe9", b"\xff\xfe", b"gzip", b"br", b"identity", b"x" * 300]
)


@st.composite
def requests(draw: st.DrawFn, key: str) -> tuple[str, bytes, dict[bytes, bytes]]:
    path, message_class = draw(st.sampled_from(RPCS))
    body = json.dumps(draw(bodies(message_class))).encode()
    content_type = draw(st.sampled_from([b"application/json", b"application/proto", b"text/plain", b""]))
    if content_type == b"application/proto":
        try:
            body = message_class.from_json(body).to_binary()
        except Exception:
            body = draw(st.binary(max_size=120))
    headers: dict[bytes, bytes] = {b"content-type": content_type}
    auth = draw(st.sampled_from(["valid", "valid", "valid", "valid", "unknown", "none"]))
    if auth == "valid":
        headers[b"authorization"] = f"Bearer {key}".encode()
    elif auth == "unknown":
        headers[b"authorization"] = b"Bearer sk_test_" + draw(st.binary(min_size=1, max_size=50)).hex().encode()
    for name in draw(
        st.lists(
            st.sampled_from(
                [b"idempotency-key", b"content-encoding", b"connect-timeout-ms", b"connect-protocol-version", b"x-junk"]
            ),
            max_size=3,
            unique=True,
        )
    ):
        headers[name] = draw(HEADER_VALUES)
    return path, body, headers


FRAMINGS = st.sampled_from(["exact", "short", "long", "chunked", "bad_chunked", "no_length", "bad_length"])


def send_raw(server: Server, path: str, body: bytes, headers: dict[bytes, bytes], framing: str) -> bytes:
    """One request with the framing as given; the answer as read until the server closes."""
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers.items()]
    payload = body
    if framing == "exact":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "short":
        lines.append(b"Content-Length: %d" % (len(body) + 7))
    elif framing == "long":
        lines.append(b"Content-Length: %d" % max(0, len(body) - 3))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    elif framing == "bad_chunked":
        lines.append(b"Transfer-Encoding: chunked")
        payload = b"zz\r\n" + body + b"\r\n"
    elif framing == "bad_length":
        lines.append(b"Content-Length: 12abc")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + payload)
        if framing in ("short", "bad_chunked"):
            # The body ends here, short of what was announced (else the body deadline ends it).
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # the server dropped a request it could not frame; no status to check
    return answer


def assert_not_5xx(answer: bytes, context: object) -> None:
    if not answer:  # connection closed without an answer: only for framing HTTP itself refuses
        return
    assert answer.startswith(b"HTTP/1.1 "), (context, answer[:200])
    status = int(answer.split(b" ", 2)[1])
    assert status < 500, (context, answer[:500])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_request_to_any_rpc_is_answered_without_a_5xx(server: Server, api: Api, data: st.DataObject) -> None:
    path, body, headers = data.draw(requests(api.key or ""))
    answer = send_raw(server, path, body, headers, "exact")
    assert answer, (path, body[:300], headers)
    assert_not_5xx(answer, (path, body[:300], headers))


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), framing=FRAMINGS)
def test_any_framing_is_answered_without_a_5xx(server: Server, api: Api, data: st.DataObject, framing: str) -> None:
    path, body, headers = data.draw(requests(api.key or ""))
    answer = send_raw(server, path, body, headers, framing)
    assert_not_5xx(answer, (path, framing, body[:200], headers))


def test_the_server_still_answers_after_the_fuzzing(server: Server, api: Api, game: Game) -> None:
    assert api.create_session(game.game_id)["id"].startswith("sess_")
    assert httpx.get(f"{server.url}/healthz").status_code == 200
