"""Calls through the generated Connect clients: auth, idempotency keys, retries, typed errors."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from connectrpc.client import ResponseMetadata
from connectrpc.errors import ConnectError
from pyqwest import Client, HTTPTransport, SyncClient, SyncHTTPTransport

from ._retry import Backoff, retry_after, should_retry
from ._version import VERSION
from .errors import ToffeePayError, from_connect
from .pagination import AsyncPage, Page
from .resources._params import checked

R = TypeVar("R")
C = TypeVar("C")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
# Requests go uncompressed: a gzip body embeds its creation time, so a retry's body would
# differ from the first attempt's and the API would refuse the reused Idempotency-Key.
_CONNECT_OPTIONS: dict[str, Any] = {"send_compression": None}


class _Transport:
    """What the sync and async transports share: settings, headers, the retry decision."""

    def __init__(self, api_key: str, base_url: str, timeout: float, max_retries: int) -> None:
        if not api_key:
            raise ValueError("api_key is required, e.g. ToffeePay('sk_test_...')")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = Backoff()
        self.jitter: Callable[[], float] = random.random
        self._headers = {"authorization": f"Bearer {api_key}", "user-agent": f"toffeepay-python/{VERSION}"}
        self.closed = False

    def _open(self) -> None:
        if self.closed:
            raise ToffeePayError("this client is closed; create a new one", code="failed_precondition")

    def _prepare(self, *, mutating: bool, idempotency_key: str | None, timeout: float | None) -> dict[str, Any]:
        headers = dict(self._headers)
        if mutating:
            # Made once per logical call and reused by each retry, so the API performs it once.
            headers["idempotency-key"] = idempotency_key or str(uuid.uuid4())
        seconds = self.timeout if timeout is None else timeout
        return {"headers": headers, "timeout_ms": max(1, round(seconds * 1000))}

    def _failure(self, exc: ConnectError, meta: ResponseMetadata) -> ToffeePayError:
        return from_connect(exc, http_status=meta.http_status, request_id=meta.headers.get("x-request-id"))

    def _wait(self, error: ToffeePayError, retry: int, meta: ResponseMetadata) -> float | None:
        """Seconds to sleep before retrying, or None to give up."""
        if retry >= self.max_retries or not should_retry(error):
            return None
        return self.backoff.delay(retry, jitter=self.jitter(), retry_after=retry_after(meta.headers.get("retry-after")))


class SyncTransport(_Transport):
    def __init__(
        self, api_key: str, base_url: str, timeout: float, max_retries: int, http_client: SyncClient | None
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries)
        # A client made here owns its connections and closes them in close(); one passed in is the caller's.
        self._owned = SyncHTTPTransport() if http_client is None else None
        self.http_client = http_client or SyncClient(self._owned)
        self.sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self.closed = True
        if self._owned is not None:
            self._owned.close()

    def client(self, cls: Callable[..., C]) -> C:
        """A generated `...ServiceClientSync` sharing this transport's HTTP client."""
        return cls(self.base_url, http_client=self.http_client, **_CONNECT_OPTIONS)

    def call(self, method: Callable[..., R], request: Any, timeout: float | None = None) -> R:
        """A read: no Idempotency-Key, safe to repeat."""
        return self._send(method, request, self._prepare(mutating=False, idempotency_key=None, timeout=timeout))

    def mutate(
        self, method: Callable[..., R], request: Any, idempotency_key: str | None = None, timeout: float | None = None
    ) -> R:
        """A change: one Idempotency-Key for all of its attempts."""
        return self._send(
            method, request, self._prepare(mutating=True, idempotency_key=idempotency_key, timeout=timeout)
        )

    def _send(self, method: Callable[..., R], request: Any, options: dict[str, Any]) -> R:
        self._open()
        checked(request)  # a wrong argument is refused here, at once, never sent or retried
        retry = 0
        while True:
            meta = ResponseMetadata()
            try:
                with meta:
                    return method(request, **options)
            except ConnectError as exc:
                error = self._failure(exc, meta)
                wait = self._wait(error, retry, meta)
                if wait is None:
                    raise error from exc
            self.sleep(wait)
            retry += 1

    def page(
        self,
        method: Callable[..., Any],
        make_request: Callable[[int], Any],
        items: str,
        offset: int,
        timeout: float | None,
    ) -> Page[Any]:
        """One page of a list RPC; the page fetches the next ones the same way."""

        def fetch(at: int) -> Page[Any]:
            response = self.call(method, make_request(at), timeout)
            data = list(getattr(response, items))
            return Page(data, total=response.total, has_more=response.has_more, offset=at, fetch=fetch)

        return fetch(offset)


class AsyncTransport(_Transport):
    def __init__(
        self, api_key: str, base_url: str, timeout: float, max_retries: int, http_client: Client | None
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries)
        self._owned = HTTPTransport() if http_client is None else None
        self.http_client = http_client or Client(self._owned)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def close(self) -> None:
        self.closed = True
        if self._owned is not None:
            await self._owned.aclose()

    def client(self, cls: Callable[..., C]) -> C:
        """A generated async `...ServiceClient` sharing this transport's HTTP client."""
        return cls(self.base_url, http_client=self.http_client, **_CONNECT_OPTIONS)

    async def call(self, method: Callable[..., Awaitable[R]], request: Any, timeout: float | None = None) -> R:
        """A read: no Idempotency-Key, safe to repeat."""
        return await self._send(method, request, self._prepare(mutating=False, idempotency_key=None, timeout=timeout))

    async def mutate(
        self,
        method: Callable[..., Awaitable[R]],
        request: Any,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> R:
        """A change: one Idempotency-Key for all of its attempts."""
        return await self._send(
            method, request, self._prepare(mutating=True, idempotency_key=idempotency_key, timeout=timeout)
        )

    async def _send(self, method: Callable[..., Awaitable[R]], request: Any, options: dict[str, Any]) -> R:
        self._open()
        checked(request)
        retry = 0
        while True:
            meta = ResponseMetadata()
            try:
                with meta:
                    return await method(request, **options)
            except ConnectError as exc:
                if isinstance(exc.__cause__, asyncio.CancelledError):
                    # The caller cancelled (task.cancel(), asyncio.timeout): not a failure to retry.
                    raise exc.__cause__ from None
                error = self._failure(exc, meta)
                wait = self._wait(error, retry, meta)
                if wait is None:
                    raise error from exc
            await self.sleep(wait)
            retry += 1

    async def page(
        self,
        method: Callable[..., Awaitable[Any]],
        make_request: Callable[[int], Any],
        items: str,
        offset: int,
        timeout: float | None,
    ) -> AsyncPage[Any]:
        """One page of a list RPC; the page fetches the next ones the same way."""

        async def fetch(at: int) -> AsyncPage[Any]:
            response = await self.call(method, make_request(at), timeout)
            data = list(getattr(response, items))
            return AsyncPage(data, total=response.total, has_more=response.has_more, offset=at, fetch=fetch)

        return await fetch(offset)
