"""The HTTP client of the dispatcher: it only connects to addresses webhooks may reach.

Each new connection resolves the host through `GuardedResolver`, which checks every address
(public ones only, unless the operator lets this mode's endpoints reach private networks)
and hands aiohttp only checked ones to connect to, keeping the host name for the Host header
and TLS; so a DNS answer that changes between the check and the connection cannot redirect
a webhook to an internal address. aiohttp does not resolve a host that is an IP address:
`WebhookClient.open` checks those itself, before anything is sent.

aiohttp rather than httpx: it spends about an eighth of the CPU per POST (docs/benchmarks.md,
Webhook delivery), and the resolver is its public hook, so nothing private is reached into.
"""

from __future__ import annotations

import errno
import functools
import socket
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ..domain.webhooks import address_allowed, literal_address
from ..services.webhooks import resolve

USER_AGENT = "ToffeePay-Webhooks/1.0"


class Refused(OSError):
    """The host is, or resolves to, an address webhooks may not reach (or does not resolve)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return self.strerror or ""


def _refusal(host: str, address: str) -> str:
    return f"{host} resolves to {address}, which webhooks may not reach"


class GuardedResolver(AbstractResolver):
    """Resolves a host name and lets aiohttp connect only if every address it has is allowed."""

    def __init__(self, *, private: bool) -> None:
        self.private = private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise Refused(f"{host} has no address")
        for address in addresses:
            if not address_allowed(address, private=self.private):
                raise Refused(_refusal(host, address))
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class RefusedTarget(aiohttp.ClientConnectionError):
    """A URL whose host is an IP address webhooks may not reach: nothing was sent."""


@functools.lru_cache(maxsize=4096)
def _target(url: str, private: bool) -> tuple[URL, str | None]:
    """The parsed URL (endpoints' URLs repeat), and why it may not be reached when its host is
    an IP address webhooks may not reach."""
    target = URL(url)
    literal = literal_address(target.host or "")
    if literal is not None and not address_allowed(literal, private=private):
        return target, f"{literal} is an address webhooks may not reach"
    return target, None


class WebhookClient:
    """No proxies from the environment, no redirects followed, no cookies kept, TLS verified,
    guarded connects, at most `max_connections` open. Its session is made on first use, so
    the client can be built outside the event loop that will use it."""

    def __init__(self, *, private: bool, max_connections: int, timeout: float) -> None:
        self.private = private
        self.max_connections = max_connections
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                use_dns_cache=False,
                resolver=GuardedResolver(private=self.private),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    def open(self, url: str, body: bytes, headers: dict[str, str]) -> Any:
        """POST `body`; an async context manager for the response (aiohttp's)."""
        target, refused = _target(url, self.private)
        if refused is not None:
            raise RefusedTarget(refused)
        return self.session().post(target, data=body, headers=headers, allow_redirects=False)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def webhook_client(*, private: bool, max_connections: int, timeout: float) -> WebhookClient:
    return WebhookClient(private=private, max_connections=max_connections, timeout=timeout)
