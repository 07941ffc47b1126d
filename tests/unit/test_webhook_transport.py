"""The dispatcher's HTTP client resolves, checks and connects to the checked address only."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.receiver import Answer, Receiver
from toffeepay_server.events import transport


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.expect("/hook", None)
    yield r
    r.close()


def resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(addresses)

    monkeypatch.setattr(transport, "resolve", resolve)
    return asked


async def test_connects_to_the_checked_address_keeping_the_host(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    asked = resolving_to(monkeypatch, "127.0.0.1")
    async with (
        transport.webhook_client(private=True, max_connections=4, timeout=5) as client,
        client.open(f"http://hooks.test:{receiver.port}/hook", b"{}", {}) as response,
    ):
        status = response.status
    assert asked == ["hooks.test"]
    assert status == 200
    got = receiver.at("/hook")[0]
    assert got.headers["host"] == f"hooks.test:{receiver.port}"
    assert got.headers["user-agent"] == "ToffeePay-Webhooks/1.0"


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.0.0.7",),
        ("93.184.215.14", "192.168.1.1"),
        ("::1",),
        ("168.63.129.16",),
        ("fd00:ec2::23",),
        ("::ffff:a83f:8110",),
    ],
)
async def test_public_only_never_connects_to_a_non_public_answer(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, addresses: tuple[str, ...]
) -> None:
    resolving_to(monkeypatch, *addresses)
    async with transport.webhook_client(private=False, max_connections=4, timeout=5) as client:
        with pytest.raises(aiohttp.ClientConnectorError, match="which webhooks may not reach"):
            async with client.open(f"http://hooks.test:{receiver.port}/hook", b"{}", {}):
                pass
    assert receiver.at("/hook") == []


async def test_metadata_addresses_are_refused_even_where_private_targets_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving_to(monkeypatch, "169.254.169.254")
    async with transport.webhook_client(private=True, max_connections=4, timeout=5) as client:
        with pytest.raises(aiohttp.ClientConnectorError, match=r"169\.254\.169\.254"):
            async with client.open("http://metadata.test/latest", b"", {}):
                pass
        with pytest.raises(aiohttp.ClientConnectionError, match="may not reach"):
            async with client.open("http://169.254.169.254/latest", b"", {}):
                pass
        with pytest.raises(aiohttp.ClientConnectionError, match="may not reach"):
            async with client.open("http://[fd00:ec2::254]/latest", b"", {}):
                pass


async def test_redirects_are_not_followed_and_proxies_not_used(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    receiver.expect("/moved", None, Answer(302, headers={"Location": "/elsewhere"}))
    receiver.expect("/elsewhere", None)
    async with (
        transport.webhook_client(private=True, max_connections=4, timeout=5) as client,
        client.open(receiver.url("/moved"), b"{}", {}) as response,
    ):
        status = response.status
    assert status == 302
    assert [r.path for r in receiver.received] == ["/moved"]
