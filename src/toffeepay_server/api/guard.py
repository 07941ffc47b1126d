"""In front of everything the server answers: what no request may do, whatever its path.

Before any route sees a request, the guard

- refuses a path with control characters and, on the Connect API, header values that are
  not UTF-8 and a Content-Encoding the server cannot read;
- counts requests to the payment page and processor notifications per client address;
- reads the whole body, which must arrive within `body_timeout` seconds of the headers
  (else 408) and be complete (a body shorter than its Content-Length or broken chunking
  is a 400), at most `max_body` bytes (413);
- refuses a body nested deeper than 32 levels before anything parses it;
- adds Strict-Transport-Security to every answer when the public URL is https.

A refusal is a Connect error JSON with its reason code; nothing behind the guard runs.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from ..domain.errors import DomainError, Reason
from ..domain.text import has_control
from ..observability.request_id import request_id_of
from .errors import connect_code, error_body, http_status
from .json_depth import TOO_DEEP, too_deep
from .rate_limit import IPNetwork, RateLimiter, client_address

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("toffeepay.api")

API_PREFIX = "/pay.v1."
# Readable by the Connect services (identity is no encoding at all).
READABLE_ENCODINGS = frozenset({"", "identity", "gzip"})
# One year, the least the browsers' preload lists accept.
HSTS = b"max-age=31536000; includeSubDomains"
# The key under which the guard leaves the client's address for the API gateway.
CLIENT_ADDRESS = "toffeepay.client_address"


_HEADER_REASON = {"idempotency-key": Reason.INVALID_IDEMPOTENCY_KEY}


class _Refused(Exception):
    def __init__(self, reason: Reason, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.error = DomainError(reason, message)
        self.headers = list(headers)


async def send_refusal(
    scope: Scope, send: Send, error: DomainError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    code = connect_code(error.reason)
    body = error_body(code.value, error.message, reason=error.reason.value, request_id=request_id_of(scope))
    await send(
        {
            "type": "http.response.start",
            "status": http_status(error.reason),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def inflated(body: bytes, encoding: str, limit: int) -> bytes:
    """The content of a body sent with `Content-Encoding: gzip` (or none), at most `limit` bytes."""
    if encoding.strip().lower() != "gzip":
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        content = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise _Refused(Reason.INVALID_ARGUMENT, "request body is not valid gzip") from None
    if len(content) > limit or inflater.unconsumed_tail:
        raise _Refused(Reason.REQUEST_TOO_LARGE, f"request body is larger than {limit} bytes once decompressed")
    return content


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        body_timeout: float,
        public_limiter: RateLimiter,
        trusted_proxies: Sequence[IPNetwork] = (),
        hsts: bool = False,
        unlimited_paths: frozenset[str] = frozenset({"/healthz", "/readyz"}),
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.public_limiter = public_limiter
        self.trusted_proxies = tuple(trusted_proxies)
        self.hsts = hsts
        self.unlimited_paths = unlimited_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.get_running_loop().time()
        if self.hsts:
            send = _with_hsts(send)
        try:
            body = await self._admit(scope, receive, started)
        except _Refused as refused:
            await send_refusal(scope, send, refused.error, refused.headers)
            return
        except Exception:
            log.exception("unexpected error in the request guard", path=scope["path"][:200])
            request_id = request_id_of(scope) or ""
            await send_refusal(scope, send, DomainError(Reason.INTERNAL, f"unexpected error, request id {request_id}"))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, scope: Scope, receive: Receive, started: float) -> bytes:
        """The request's body, once everything above holds; else _Refused."""
        path: str = scope["path"]
        if has_control(path):
            raise _Refused(Reason.INVALID_ARGUMENT, "the request path contains control characters")
        raw_headers = scope.get("headers", ())
        headers = dict(raw_headers)  # ASGI header names are lowercase
        address = client_address(scope, self.trusted_proxies)
        scope[CLIENT_ADDRESS] = address
        if path.startswith(API_PREFIX):
            _check_api_headers(raw_headers, headers)
        elif path not in self.unlimited_paths and (wait := await self.public_limiter.retry_after(address)) is not None:
            raise _Refused(
                Reason.RATE_LIMITED,
                f"too many requests from this address, retry in {wait} s",
                [(b"retry-after", str(wait).encode())],
            )
        length = _content_length(headers.get(b"content-length"))
        if length is not None and length > self.max_body:
            raise _Refused(Reason.REQUEST_TOO_LARGE, f"request body is larger than {self.max_body} bytes")
        body = await self._read_body(receive, started + self.body_timeout)
        if length is not None and len(body) != length:
            raise _Refused(Reason.INVALID_ARGUMENT, f"request body has {len(body)} bytes, Content-Length says {length}")
        if body and not headers.get(b"content-type", b"").split(b";")[0].strip().lower().endswith(b"proto"):
            encoding = headers.get(b"content-encoding", b"").decode("latin-1")
            if too_deep(inflated(body, encoding, self.max_body)):
                raise _Refused(Reason.INVALID_ARGUMENT, TOO_DEEP)
        return body

    async def _read_body(self, receive: Receive, deadline: float) -> bytes:
        """The whole body, or _Refused when it is not all there by `deadline` (loop time).

        One timer for the whole body (cheaper than a timeout per chunk): when it fires it
        cancels this task, and the cancellation becomes a 408.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_at(deadline, expire)
        try:
            return await self._read_all(receive)
        except asyncio.CancelledError:
            if not expired:
                raise
            task.uncancel()
            raise _Refused(
                Reason.REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.body_timeout:g} s of its headers",
            ) from None
        finally:
            timer.cancel()

    async def _read_all(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await receive()
            except Exception:  # the server could not read the body off the connection
                raise _Refused(Reason.INVALID_ARGUMENT, "the request body could not be read") from None
            if message["type"] == "http.disconnect":
                # Granian reports a body cut short (fewer bytes than Content-Length, broken
                # chunking) this way; the client may still be there to read why.
                raise _Refused(Reason.INVALID_ARGUMENT, "the request body ended early or its framing is broken")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(Reason.REQUEST_TOO_LARGE, f"request body is larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_api_headers(raw_headers: Sequence[tuple[bytes, bytes]], headers: dict[bytes, bytes]) -> None:
    if not b"".join(value for _, value in raw_headers).isascii():
        for name, value in raw_headers:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                shown = name.decode("latin-1").lower()[:64]
                reason = _HEADER_REASON.get(shown, Reason.INVALID_ARGUMENT)
                raise _Refused(reason, f"header {shown} is not valid UTF-8") from None
    encoding = headers.get(b"content-encoding", b"").decode("utf-8").strip().lower()
    if encoding not in READABLE_ENCODINGS:
        raise _Refused(
            Reason.UNSUPPORTED_ENCODING,
            f"Content-Encoding {encoding[:40]!r} is not supported: send gzip or no encoding",
        )


def _content_length(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise _Refused(Reason.INVALID_ARGUMENT, "Content-Length is not a number") from None
    if length < 0:
        raise _Refused(Reason.INVALID_ARGUMENT, "Content-Length is negative")
    return length


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_hsts(send: Send) -> Send:
    async def send_with_hsts(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"strict-transport-security", HSTS)]}
        await send(message)

    return send_with_hsts
