"""The rules behind the request guard, one by one, without a server."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp
from toffeepay._proto.pay.v1 import payment_pb, webhook_pb

from toffeepay_server.api.fields import check_request
from toffeepay_server.api.gateway import ApiGateway
from toffeepay_server.api.guard import RequestGuard
from toffeepay_server.api.json_depth import too_deep
from toffeepay_server.api.rate_limit import RateLimiter, client_address, parse_networks
from toffeepay_server.domain.errors import DomainError
from toffeepay_server.domain.images import check_image
from toffeepay_server.domain.sessions import check_metadata
from toffeepay_server.domain.text import check_text, has_control
from toffeepay_server.domain.urls import check_return_url, has_non_ascii_digits
from toffeepay_server.domain.webhooks import check_description, check_url
from toffeepay_server.serving import port_in_use
from toffeepay_server.store.database import create_private_sqlite_file

# JSON depth


def test_depth_counts_arrays_and_objects_but_not_brackets_in_strings() -> None:
    assert not too_deep(b"[" * 32 + b"]" * 32)
    assert too_deep(b"[" * 33 + b"]" * 33)
    assert too_deep(b'{"a":' * 33 + b"1" + b"}" * 33)
    assert not too_deep(b'{"s": "' + b"[" * 100 + b'"}')
    assert not too_deep(b'{"s": "\\"' + b"[" * 100 + b'"}')  # an escaped quote does not end the string
    assert not too_deep(b"[[]]" * 1000)  # wide is not deep
    assert not too_deep(b"[" * 20 + b"[[]]" * 1000 + b"]" * 20)
    assert too_deep(b"[" * 31 + b"[[]]" * 10 + b"]" * 31)


def test_unclosed_brackets_count_as_levels() -> None:
    assert too_deep(b'{"user_id": ' + b"[" * 15_000)
    assert not too_deep(b"[" * 32)


# Control characters


@pytest.mark.parametrize("char", ["\x00", "\x1f", "\x7f", "\x80", "\x9f", "\n", "\t"])
def test_control_characters_are_found(char: str) -> None:
    assert has_control(f"a{char}b")
    with pytest.raises(DomainError, match="user_id must not contain control characters"):
        check_text(f"a{char}b", "user_id")


def test_text_without_control_characters_passes() -> None:
    assert not has_control("Gold coins \u00e9\u00a0\u4e2d\U0001f600")


def test_the_domain_rules_refuse_control_characters() -> None:
    with pytest.raises(DomainError, match="invalid_metadata: metadata key"):
        check_metadata({"a\x00": "b"})
    with pytest.raises(DomainError, match="invalid_metadata: metadata value"):
        check_metadata({"a": "b\x85"})
    with pytest.raises(DomainError, match="invalid_argument: description"):
        check_description("ops\x00")


def test_every_text_field_of_a_request_is_checked_by_name() -> None:
    cases: list[tuple[Any, str]] = [
        (payment_pb.GetSessionRequest(id="sess_\x00"), "invalid_argument: id "),
        (payment_pb.GetSessionRequest(session_id="sess_\x7f"), "invalid_argument: session_id "),
        (
            payment_pb.CreateSessionRequest.from_json(b'{"item": {"title": "a\\u0000"}}'),
            "invalid_argument: item.title ",
        ),
        (payment_pb.CreateSessionRequest(metadata={"k\x01": "v"}), "invalid_metadata: metadata key "),
        (payment_pb.CreateSessionRequest(metadata={"k": "v\x01"}), "invalid_metadata: metadata['k'] "),
        (payment_pb.CreateSessionRequest(return_url="https://a.example/\x00"), "invalid_return_url: return_url "),
        (webhook_pb.CreateEndpointRequest(events=["session.paid", "x\x00"]), "invalid_argument: events "),
    ]
    for message, prefix in cases:
        with pytest.raises(DomainError) as caught:
            check_request(message)
        assert str(caught.value).startswith(prefix), caught.value
    check_request(payment_pb.CreateSessionRequest(user_id="player_42", metadata={"order": "42"}))


def test_timestamps_outside_rfc3339_are_refused() -> None:
    for stamp in (Timestamp(seconds=10**15), Timestamp(seconds=-(10**15)), Timestamp(seconds=0, nanos=-1)):
        with pytest.raises(DomainError, match="invalid_time_range: from is outside"):
            check_request(payment_pb.ListSessionsRequest(from_=stamp))
    with pytest.raises(DomainError, match="invalid_expires_at"):
        check_request(payment_pb.CreateSessionRequest(expires_at=Timestamp(seconds=253_402_300_800)))
    check_request(payment_pb.ListSessionsRequest(from_=Timestamp(seconds=253_402_300_799, nanos=999_999_999)))


# URLs


def test_hosts_and_ports_with_digits_other_than_ascii_are_refused() -> None:
    assert has_non_ascii_digits("example.com:\uff18\uff10")
    assert has_non_ascii_digits("\u0661\u0662\u0667.0.0.1")
    assert not has_non_ascii_digits("m\u00fcnchen.example:8443")
    with pytest.raises(DomainError, match="invalid_return_url"):
        check_return_url("https://game.example:\uff18\uff10/done", live=False)
    with pytest.raises(DomainError, match="invalid_image"):
        check_image("https://cdn.example:\uff18\uff10/a.png")
    with pytest.raises(DomainError, match="invalid_url"):
        check_url("https://hooks.example:\uff18\uff10/in", private=True)
    assert check_return_url("https://m\u00fcnchen.example/done", live=False)


# Client address


def test_the_client_address_is_the_peer_unless_a_trusted_proxy_names_another() -> None:
    scope = {"client": ("10.1.2.3", 5000), "headers": [(b"x-forwarded-for", b"203.0.113.7, 10.1.2.3")]}
    assert client_address(scope, ()) == "10.1.2.3"
    assert client_address(scope, parse_networks(["10.0.0.0/8"])) == "203.0.113.7"
    assert client_address(scope, parse_networks(["192.168.0.1"])) == "10.1.2.3"
    garbage = {"client": ("10.1.2.3", 5000), "headers": [(b"x-forwarded-for", b"not-an-address")]}
    assert client_address(garbage, parse_networks(["10.0.0.0/8"])) == "10.1.2.3"
    assert parse_networks(["::1"]) == (ipaddress.ip_network("::1/128"),)
    with pytest.raises(ValueError):
        parse_networks(["proxy.example"])


# Process


def test_a_port_with_a_listener_is_in_use_even_with_so_reuseport() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        error = port_in_use("127.0.0.1", port)
        assert error is not None and "in use" in str(error)
    assert port_in_use("127.0.0.1", port) is None


def test_a_new_sqlite_file_is_private_and_an_existing_one_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    create_private_sqlite_file(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    existing = tmp_path / "old.db"
    existing.touch()
    os.chmod(existing, 0o640)
    create_private_sqlite_file(f"sqlite+aiosqlite:///{existing}")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    create_private_sqlite_file("postgresql://postgres@127.0.0.1/x")  # nothing to do


# The guard as an ASGI app


class Exchange:
    """One request through an ASGI app; the answer collected."""

    def __init__(self, messages: list[dict[str, Any]] | None = None, *, stall: bool = False) -> None:
        self.messages = list(messages or [{"type": "http.request", "body": b"{}", "more_body": False}])
        self.stall = stall
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        if self.stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message["body"]})


def guard(**overrides: Any) -> RequestGuard:
    options: dict[str, Any] = {
        "max_body": 1024,
        "body_timeout": 0.2,
        "public_limiter": RateLimiter("off"),
    }
    options.update(overrides)
    return RequestGuard(_ok, **options)


def scope(path: str = "/pay.v1.PaymentService/GetSession", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": ("127.0.0.1", 4000),
        "headers": headers if headers is not None else [(b"content-type", b"application/json")],
    }


async def test_a_body_that_stalls_past_the_deadline_is_408_and_the_app_never_runs() -> None:
    exchange = Exchange([{"type": "http.request", "body": b"{", "more_body": True}], stall=True)
    await guard()(scope(), exchange.receive, exchange.send)
    assert exchange.status == 408
    assert exchange.body["code"] == "deadline_exceeded"
    assert exchange.body["message"].startswith("request_timeout: ")


async def test_a_body_cut_short_is_400() -> None:
    exchange = Exchange([{"type": "http.request", "body": b"{", "more_body": True}])
    await guard()(scope(), exchange.receive, exchange.send)
    assert exchange.status == 400 and exchange.body["code"] == "invalid_argument"
    exchange = Exchange()
    await guard()(scope(headers=[(b"content-length", b"10")]), exchange.receive, exchange.send)
    assert exchange.status == 400 and "Content-Length says 10" in exchange.body["message"]


async def test_bodies_over_the_limit_are_413() -> None:
    exchange = Exchange([{"type": "http.request", "body": b"x" * 2000, "more_body": False}])
    await guard()(scope(), exchange.receive, exchange.send)
    assert exchange.status == 413 and exchange.body["message"].startswith("request_too_large: ")


async def test_deep_json_unknown_encodings_and_non_utf8_headers_are_refused() -> None:
    exchange = Exchange([{"type": "http.request", "body": b"[" * 40 + b"]" * 40, "more_body": False}])
    await guard()(scope(), exchange.receive, exchange.send)
    assert exchange.status == 400 and "nested deeper than 32" in exchange.body["message"]
    exchange = Exchange()
    await guard()(scope(headers=[(b"content-encoding", b"zstd2")]), exchange.receive, exchange.send)
    assert exchange.status == 400 and exchange.body["message"].startswith("unsupported_encoding: ")
    exchange = Exchange()
    await guard()(scope(headers=[(b"idempotency-key", b"caf\xe9")]), exchange.receive, exchange.send)
    assert exchange.status == 400 and exchange.body["message"].startswith("invalid_idempotency_key: ")
    # Binary protobuf is not JSON: its bytes are never read as brackets.
    exchange = Exchange([{"type": "http.request", "body": b"[" * 40, "more_body": False}])
    await guard()(scope(headers=[(b"content-type", b"application/proto")]), exchange.receive, exchange.send)
    assert exchange.status == 200


async def test_pages_are_limited_per_address_and_health_is_not() -> None:
    limited = guard(public_limiter=RateLimiter("2/minute", namespace="address"))
    statuses = []
    for _ in range(3):
        exchange = Exchange()
        await limited(scope("/sess_abc"), exchange.receive, exchange.send)
        statuses.append(exchange.status)
    assert statuses == [200, 200, 429]
    assert exchange.body["message"].startswith("rate_limited: ") and b"retry-after" in exchange.headers
    exchange = Exchange()
    await limited(scope("/healthz"), exchange.receive, exchange.send)
    assert exchange.status == 200


async def test_hsts_is_added_to_every_answer_under_https() -> None:
    exchange = Exchange()
    await guard(hsts=True)(scope("/sess_abc"), exchange.receive, exchange.send)
    assert exchange.headers[b"strict-transport-security"].startswith(b"max-age=")
    exchange = Exchange()
    await guard()(scope("/sess_abc"), exchange.receive, exchange.send)
    assert b"strict-transport-security" not in exchange.headers


# The gateway's own failures


class _FailingDb:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def keys_version(self) -> int | None:
        return None

    def point_read(self) -> Any:
        raise self.error


class _Ctx:
    def __init__(self, error: Exception) -> None:
        self.db = _FailingDb(error)


async def _gateway_answer(error: Exception) -> Exchange:
    gateway = ApiGateway(_ok, _Ctx(error), mutating_paths=set(), max_body=1024)  # type: ignore[arg-type]
    exchange = Exchange()
    headers = [(b"authorization", b"Bearer sk_test_" + b"a" * 43), (b"content-type", b"application/json")]
    request = scope(headers=headers)
    request["state"] = {"request_id": "req_0123456789abcdef"}  # given by RequestIds in front
    await gateway(request, exchange.receive, exchange.send)
    return exchange


async def test_an_unexpected_error_in_the_gateway_is_internal_with_the_request_id_only() -> None:
    exchange = await _gateway_answer(RuntimeError("secret detail: password=hunter2"))
    assert exchange.status == 500
    assert exchange.body["code"] == "internal"
    assert "req_0123456789abcdef" in exchange.body["message"]
    assert "hunter2" not in exchange.body["message"]


async def test_the_database_down_during_authentication_is_unavailable() -> None:
    exchange = await _gateway_answer(ConnectionRefusedError(111, "Connect call failed"))
    assert exchange.status == 503
    assert exchange.body["code"] == "unavailable"
    assert exchange.body["message"].startswith("unavailable: ")


def test_the_json_codec_finds_control_characters_raw_or_escaped() -> None:
    from connectrpc.errors import ConnectError

    from toffeepay_server.api.codecs import JsonCodec

    codec = JsonCodec()
    for body in ('{"id": "a\\u0000"}', '{"id": "a\\n"}', '{"id": "a\x7f"}', '{"id": "a\u0085"}'):
        with pytest.raises(ConnectError, match="id must not contain control characters"):
            codec.decode(body.encode(), payment_pb.GetSessionRequest)
    assert codec.decode('{"id": "sess_\u00e9\\u00e9"}'.encode(), payment_pb.GetSessionRequest).id == "sess_\u00e9\u00e9"


def test_one_background_lease_per_server_until_its_holder_lets_go(tmp_path: Path, monkeypatch: Any) -> None:
    from toffeepay_server.serving import BackgroundLease

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    first, second, other_server = BackgroundLease(4242), BackgroundLease(4242), BackgroundLease(4343)
    assert first.try_take() and first.try_take()  # held: asking again keeps it
    assert not second.try_take()
    assert other_server.try_take()  # another server's workers elect their own
    first.release()
    assert second.try_take()
    for lease in (second, other_server):
        lease.release()


def test_a_started_process_keeps_its_startup_objects_out_of_collections() -> None:
    """Run in a process of its own: freezing the test runner's objects would keep them forever."""
    import subprocess
    import sys

    probe = (
        "import gc\n"
        "from toffeepay_server.serving import GC_YOUNG_THRESHOLD, settle_garbage_collector\n"
        "before = gc.get_freeze_count()\n"
        "settle_garbage_collector()\n"
        "print(before, gc.get_freeze_count(), gc.get_threshold()[0] == GC_YOUNG_THRESHOLD)\n"
        "cycle = []\n"
        "cycle.append(cycle)\n"
        "del cycle\n"
        "print(gc.collect())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    before, frozen, threshold_set, collected = int(out[0]), int(out[1]), out[2], int(out[3])
    assert before == 0 and frozen > 1000  # the imported modules' objects
    assert threshold_set == "True"
    assert collected >= 1  # cycles made later are still collected
