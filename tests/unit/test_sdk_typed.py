"""The Python SDK as a typed library: argument errors at once, reasons from ErrorInfo, closing,
a light `toffeepay.webhook`, py.typed and compatible dependency ranges."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import toffeepay
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from toffeepay._proto.google.rpc.error_details_pb import ErrorInfo
from toffeepay.errors import from_connect

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
ITEM = {"title": "50 Gold Coins", "price": 499, "currency": "USD"}


@pytest.fixture
def unreachable() -> toffeepay.ToffeePay:
    """A client whose every request would fail to connect, and which records any backoff sleep."""
    client = toffeepay.ToffeePay("sk_test_x", base_url=f"http://127.0.0.1:{free_port()}", max_retries=3)
    client.slept = []  # type: ignore[attr-defined]
    client._transport.sleep = client.slept.append  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: c.sessions.create(game_id="g", user_id="p", item={**ITEM, "price": 4.99}), "item.price"),
        (lambda c: c.sessions.create(game_id="g", user_id="p", item={**ITEM, "price": True}), "item.price"),
        (lambda c: c.sessions.create(game_id="g", user_id="p", item={"title": "x", "price": 1}), "item.currency"),
        (lambda c: c.sessions.create(game_id="g", user_id="p", item={**ITEM, "colour": "red"}), "item.colour"),
        (lambda c: c.sessions.create(game_id="g", user_id="p", item="gold"), "item"),
        (lambda c: c.sessions.create(game_id="g", user_id=42, item=ITEM), "user_id"),
        (lambda c: c.sessions.create(game_id="g", user_id="p", item=ITEM, metadata={"n": 1}), "metadata['n']"),
        (lambda c: c.sessions.create(game_id="g", user_id="p", item=ITEM, expires_at="soon"), "expires_at"),
        (lambda c: c.sessions.get(123), "id"),
        (lambda c: c.sessions.list(limit="ten"), "limit"),
        (lambda c: c.sessions.list(from_=datetime.now().date()), "from_"),
    ],
)
def test_a_wrong_argument_is_refused_at_once_naming_it(
    unreachable: toffeepay.ToffeePay, call: Any, argument: str
) -> None:
    with pytest.raises(toffeepay.ArgumentError) as raised:
        call(unreachable)
    error = raised.value
    assert error.argument == argument, error
    assert isinstance(error, toffeepay.InvalidRequestError) and isinstance(error, ValueError)
    assert not isinstance(error, toffeepay.APIConnectionError)
    assert error.reason == "invalid_argument" and error.http_status is None
    assert unreachable.slept == []  # type: ignore[attr-defined]  # never retried: nothing was sent


def test_a_right_argument_reaches_the_network(unreachable: toffeepay.ToffeePay) -> None:
    """The same client with good arguments does try (and retries a refused connection)."""
    with pytest.raises(toffeepay.APIConnectionError):
        unreachable.sessions.create(game_id="g", user_id="p", item=ITEM)
    assert len(unreachable.slept) == 3  # type: ignore[attr-defined]


def _error(code: Code, message: str, *details: ErrorInfo) -> ConnectError:
    return ConnectError(code, message, details=list(details))


def test_the_reason_comes_from_error_info() -> None:
    info = ErrorInfo(reason="invalid_currency", domain="toffeepay.dev", metadata={"request_id": "req_1"})
    error = from_connect(
        _error(Code.INVALID_ARGUMENT, "currency XYZ is unknown", info), http_status=400, request_id=None
    )
    assert type(error) is toffeepay.InvalidRequestError
    assert (error.reason, error.message, error.request_id) == ("invalid_currency", "currency XYZ is unknown", "req_1")
    # The message prefix is the same reason: the human sentence comes without it.
    prefixed = from_connect(
        _error(Code.NOT_FOUND, "not_found: no session sess_x", ErrorInfo(reason="not_found", domain="toffeepay.dev")),
        http_status=404,
        request_id="req_2",
    )
    assert (type(prefixed), prefixed.reason, prefixed.message) == (
        toffeepay.NotFoundError,
        "not_found",
        "no session sess_x",
    )
    # An ErrorInfo of another domain is not ours; a server without details still gives its prefix.
    foreign = ErrorInfo(reason="QUOTA", domain="example.com")
    assert (
        from_connect(
            _error(Code.INVALID_ARGUMENT, "invalid_price: no", foreign), http_status=400, request_id=None
        ).reason
        == "invalid_price"
    )
    rate = ErrorInfo(reason="rate_limited", domain="toffeepay.dev")
    assert isinstance(
        from_connect(_error(Code.RESOURCE_EXHAUSTED, "slow down", rate), http_status=429, request_id=None),
        toffeepay.RateLimitError,
    )


def test_close_and_context_managers() -> None:
    with toffeepay.ToffeePay("sk_test_x") as client:
        assert not client._transport.closed
    assert client._transport.closed
    with pytest.raises(toffeepay.ToffeePayError, match="closed"):
        client.sessions.get("sess_x")

    async def run() -> toffeepay.AsyncToffeePay:
        async with toffeepay.AsyncToffeePay("sk_test_x") as aclient:
            pass
        with pytest.raises(toffeepay.ToffeePayError, match="closed"):
            await aclient.sessions.status("sess_x")
        return aclient

    assert asyncio.run(run())._transport.closed


def test_webhook_verification_imports_no_http_stack() -> None:
    code = (
        "import sys, toffeepay.webhook, toffeepay.errors\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyqwest', 'connectrpc', 'protobuf', 'httpx'})\n"
        "print(heavy)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert shown.stdout.strip() == "[]", shown


def test_the_sdk_is_typed_and_accepts_compatible_releases() -> None:
    assert files("toffeepay").joinpath("py.typed").is_file()
    project = tomllib.loads((ROOT / "sdk/python/pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["toffeepay"]
    for requirement in project["project"]["dependencies"]:
        assert "==" not in requirement and any(op in requirement for op in ("~=", ">=")), requirement
    # The server's own lock pins each of them exactly.
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("connectrpc", "protobuf-py", "pyqwest"):
        assert any(dep.startswith(f"{name}==") for dep in server), name


def test_literal_types_name_every_status() -> None:
    from typing import get_args

    from toffeepay import types

    assert set(get_args(types.SessionStatus)) == {"pending", "paid", "failed", "cancelled", "expired"}
    assert set(get_args(types.PaymentStatus)) == {"processing", "succeeded", "failed"}
    assert set(get_args(types.PaymentMethod)) == {"card", "apple_pay", "google_pay"}
    assert {"succeeded", "insufficient_funds", "card_declined"} <= set(get_args(types.SandboxOutcome))
    assert set(types.ItemParams.__required_keys__) == {"title", "price", "currency"}


def test_readme_quickstart_is_the_type_checked_sample() -> None:
    """The README's game server is sdk/python/examples/game_server.py, which `make lint` checks with mypy --strict."""
    sample = (ROOT / "sdk/python/examples/game_server.py").read_text()
    assert f"```python\n{sample}```" in (ROOT / "README.md").read_text()
    assert (
        "mypy --strict" in (ROOT / "Makefile").read_text()
        and "examples/game_server.py" in (ROOT / "Makefile").read_text()
    )


def test_mypy_strict_accepts_the_sample_and_catches_misuse(tmp_path: Path) -> None:
    """A game server using the SDK wrongly is caught by a type checker, thanks to py.typed and the Literals."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import toffeepay\n"
        "client = toffeepay.ToffeePay('sk_test_x')\n"
        "client.sandbox.pay_session('sess_x', outcome='suceeded')\n"
        "client.sessions.create(game_id='g', user_id='p', item={'title': 'x', 'price': 4.99, 'currency': 'USD'})\n"
        "client.sessions.list(status='payed')\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-warn-unused-configs", "--cache-dir", str(tmp_path / "cache"),
         str(ROOT / "sdk/python/examples/game_server.py"), str(wrong)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert all(line.startswith(str(wrong)) for line in errors), checked.stdout
    assert [line.split(":")[1] for line in errors] == ["3", "4", "5"], checked.stdout
