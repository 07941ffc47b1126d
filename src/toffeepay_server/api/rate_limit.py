"""Request limits (`rate_limited`) per API key and per client address, counted by the `limits` library."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from limits import RateLimitItem, parse_many
from limits.aio import strategies as aio_strategies
from limits.storage import storage_from_string

log = structlog.get_logger("toffeepay.api")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Windows kept before the expired ones are dropped (one per API key and limit in use).
_MAX_LOCAL_WINDOWS = 10_000


class _LocalWindows:
    """The fixed windows of `limits`' FixedWindowRateLimiter, counted in this process.

    Same rule as `limits` with `memory://`: a key's window opens at its first hit and lasts
    the limit's period; every hit counts, and one over the limit is refused until the window
    ends. `limits`' MemoryStorage expires keys on a timer thread that it starts again every
    10 ms under load, which cost a tenth of a CreateSession; here a window simply ends when
    the next hit finds it past its end. All calls come from the event loop's thread.
    """

    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}  # key -> [ends_at, hits]

    def hit(self, key: str, period: int, limit: int, now: float) -> float | None:
        """Count one hit; None when allowed, else the time its window ends."""
        window = self._windows.get(key)
        if window is None or window[0] <= now:
            if len(self._windows) >= _MAX_LOCAL_WINDOWS:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            window = self._windows[key] = [now + period, 0]
        window[1] += 1
        return None if window[1] <= limit else window[0]


def _async_storage_uri(uri: str) -> str:
    """`limits`' asynchronous storage for a URI operators write (redis://host:port, ...)."""
    return uri if uri.startswith("async+") else "async+" + uri


class RateLimiter:
    """Counts requests of one identifier (an API key, a client address) against `spec`.

    `memory://` counts in this process; any other storage (redis://...) is reached through
    `limits`' asyncio API, so a counter shared by every process never blocks the event loop.
    When that storage cannot be reached the request is let through and the failure logged:
    a limiter outage must not become an API outage.
    """

    def __init__(self, spec: str, storage_uri: str = "memory://", *, namespace: str = "api_key") -> None:
        self.items: list[RateLimitItem] = [] if spec.strip().lower() in ("", "0", "off", "none") else parse_many(spec)
        self.namespace = namespace
        uri = storage_uri.strip()
        self.local = _LocalWindows() if self.items and uri == "memory://" else None
        self.limiter = (
            aio_strategies.FixedWindowRateLimiter(storage_from_string(_async_storage_uri(uri)))
            if self.items and self.local is None
            else None
        )

    async def retry_after(self, identifier: str) -> int | None:
        """Count one request; None when allowed, else whole seconds until the window resets."""
        if self.local is not None:
            now = time.time()
            for item in self.items:
                ends = self.local.hit(item.key_for(self.namespace, identifier), item.get_expiry(), item.amount, now)
                if ends is not None:
                    return max(1, math.ceil(ends - now))
            return None
        if self.limiter is None:
            return None
        try:
            for item in self.items:
                if not await self.limiter.hit(item, self.namespace, identifier):
                    reset = (await self.limiter.get_window_stats(item, self.namespace, identifier)).reset_time
                    return max(1, math.ceil(reset - time.time()))
        except Exception as exc:  # the storage is down or unreachable
            log.warning("rate limit storage unavailable, request let through", error=type(exc).__name__)
        return None


def client_address(scope: Mapping[str, Any], trusted_proxies: Sequence[IPNetwork]) -> str:
    """The peer's address, or the first of X-Forwarded-For when the peer is a trusted proxy."""
    client = scope.get("client")
    peer = client[0] if client else ""
    if not trusted_proxies or not peer:
        return peer
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(address in network for network in trusted_proxies):
        return peer
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-forwarded-for":
            first = value.split(b",", 1)[0].strip().decode("latin-1")
            with contextlib.suppress(ValueError):
                return str(ipaddress.ip_address(first))
            return peer
    return peer


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """`TOFFEEPAY_TRUSTED_PROXIES`: addresses or networks (10.0.0.0/8, ::1); a bad one is a start error."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)
