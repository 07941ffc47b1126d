"""The client objects: `ToffeePay` (blocking) and `AsyncToffeePay` (asyncio)."""

from __future__ import annotations

from types import TracebackType

from pyqwest import Client, SyncClient

from ._transport import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, AsyncTransport, SyncTransport
from .resources.disputes import AsyncDisputes, Disputes
from .resources.payments import AsyncPayments, Payments
from .resources.refunds import AsyncRefunds, Refunds
from .resources.sandbox import AsyncSandbox, Sandbox
from .resources.sessions import AsyncSessions, Sessions
from .resources.webhooks import AsyncWebhooks, Webhooks


class ToffeePay:
    """A client for one API key.

    >>> client = ToffeePay("sk_test_...", base_url="https://pay.example.com")  # or `with ToffeePay(...) as client:`
    >>> session = client.sessions.create(game_id="space_shooter", user_id="player_42",
    ...     item={"title": "50 Gold Coins", "price": 499, "currency": "USD"})

    Args:
        api_key: the game's secret key, `sk_test_...` (sandbox) or `sk_live_...`.
        base_url: where the ToffeePay API runs.
        timeout: seconds to wait for each attempt of a call.
        max_retries: further attempts after a network failure, timeout, 5xx or
            rate limit, with exponential backoff and jitter. Mutating calls carry
            one Idempotency-Key across their attempts.
        http_client: a `pyqwest.SyncClient` to use, e.g. for proxies or custom TLS
            (`AsyncToffeePay` takes a `pyqwest.Client`).
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: SyncClient | None = None,
    ) -> None:
        self._transport = SyncTransport(api_key, base_url, timeout, max_retries, http_client)
        self.sessions = Sessions(self._transport)
        self.payments = Payments(self._transport)
        self.refunds = Refunds(self._transport)
        self.disputes = Disputes(self._transport)
        self.webhooks = Webhooks(self._transport)
        self.sandbox = Sandbox(self._transport)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def close(self) -> None:
        """Close the client's connections (not those of an `http_client` passed in); calls then fail."""
        self._transport.close()

    def __enter__(self) -> ToffeePay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ToffeePay(base_url={self.base_url!r})"


class AsyncToffeePay:
    """The asyncio client: the same namespaces as `ToffeePay`, every call awaitable.

    >>> client = AsyncToffeePay("sk_test_...")
    >>> status = await client.sessions.status("sess_...")
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: Client | None = None,
    ) -> None:
        self._transport = AsyncTransport(api_key, base_url, timeout, max_retries, http_client)
        self.sessions = AsyncSessions(self._transport)
        self.payments = AsyncPayments(self._transport)
        self.refunds = AsyncRefunds(self._transport)
        self.disputes = AsyncDisputes(self._transport)
        self.webhooks = AsyncWebhooks(self._transport)
        self.sandbox = AsyncSandbox(self._transport)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    async def close(self) -> None:
        """Close the client's connections (not those of an `http_client` passed in); calls then fail."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncToffeePay:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncToffeePay(base_url={self.base_url!r})"
