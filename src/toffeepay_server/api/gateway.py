"""In front of every Connect service: body limit, API key, idempotency.

Idempotency lives here, at the HTTP layer, so a replay is the first answer byte for byte.
The request's writes are held in one transaction (`Database.holding`) that commits only
with its stored answer: a crash between the two is impossible, so a retry after a crash
finds either nothing done or the answer, never a change without its answer. A use case
that hands work to a processor over the network commits what it wrote first
(`Database.checkpoint`), so the processor is only told about what exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

import structlog

from ..domain.errors import DomainError, Reason
from ..domain.idempotency import replayable
from ..observability.request_id import request_id_of
from ..services import games, idempotency
from ..services.context import ServiceContext, is_outage
from . import auth
from .errors import connect_code, http_status
from .guard import CLIENT_ADDRESS
from .rate_limit import RateLimiter, client_address

log = structlog.get_logger("toffeepay.api")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

IDEMPOTENCY_LEASE = timedelta(seconds=60)
# Not replayed (the client may fix its request and retry): only successes are stored.
_STORED_STATUS = 200
_NOT_STORED_HEADERS = {b"x-request-id", b"content-length", b"date", b"server"}


class _TooLarge(Exception):
    pass


class _Incomplete(Exception):
    pass


async def send_error(
    send: Send, error: DomainError, *, status: int | None = None, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    code = connect_code(error.reason)
    body = json.dumps({"code": code.value, "message": error.message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status or http_status(error.reason),
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Incomplete
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay_receive(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """The request content without its transfer compression: gzip embeds a timestamp, so a
    retry of the same request compresses to other bytes."""
    if encoding.strip().lower() != "gzip":
        return body
    inflater = zlib.decompressobj(wbits=31)
    content = inflater.decompress(body, limit + 1)
    if len(content) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    return content


def request_fingerprint(path: str, content_type: str, body: bytes) -> str:
    """What makes two requests "the same" for idempotency: same RPC, same encoding, same body."""
    return hashlib.sha256(b"\0".join([path.encode(), content_type.encode(), body])).hexdigest()


def _valid_idempotency_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all(0x20 <= ord(ch) <= 0x7E for ch in key)


class ApiGateway:
    """ASGI middleware for the Connect paths (`/pay.v1.*`)."""

    def __init__(
        self,
        app: ASGIApp,
        ctx: ServiceContext,
        *,
        mutating_paths: set[str],
        max_body: int,
        idempotency_wait: float = 10.0,
        idempotency_lease: timedelta = IDEMPOTENCY_LEASE,
        rate_limiter: RateLimiter | None = None,
        public_limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.mutating_paths = mutating_paths
        self.max_body = max_body
        self.idempotency_wait = idempotency_wait
        self.idempotency_lease = idempotency_lease
        self.rate_limiter = rate_limiter or RateLimiter("off")
        # Requests without a valid key count against their client address.
        self.public_limiter = public_limiter or RateLimiter("off")
        # Wakes waiters in this process at once; other processes are polled.
        self._finished: dict[tuple[str, str], asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        # The request id (request header and answer header) is set by RequestIds, in front of every route.
        extra: list[tuple[bytes, bytes]] = []

        started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self._serve(scope, receive, send_with_id, headers)
        except Exception as exc:
            request_id = request_id_of(scope) or ""
            # Whatever went wrong here, the client gets a Connect error, never a bare 500
            # nor the exception's text: the request id is what it can quote.
            if is_outage(exc):
                log.warning("database unavailable", request_id=request_id, error=type(exc).__name__)
                error = DomainError(Reason.UNAVAILABLE, "the service is unavailable for a moment, retry shortly")
            else:
                log.exception("unexpected error in the API gateway", request_id=request_id)
                error = DomainError(Reason.INTERNAL, f"unexpected error, request id {request_id}")
            if not started:
                await send_error(send_with_id, error)

    async def _serve(self, scope: Scope, receive: Receive, send_with_id: Send, headers: dict[str, str]) -> None:

        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            length = 0
        if length > self.max_body:
            await send_error(
                send_with_id, DomainError(Reason.REQUEST_TOO_LARGE, "request body is larger than 1 MiB"), status=413
            )
            return

        principal = await games.authenticate(self.ctx, auth.bearer_key(headers.get("authorization")) or "")
        if principal is None:
            address = scope.get(CLIENT_ADDRESS) or client_address(scope, ())
            if (wait := await self.public_limiter.retry_after(address)) is not None:
                await send_error(
                    send_with_id,
                    DomainError(Reason.RATE_LIMITED, f"too many requests without a valid API key, retry in {wait} s"),
                    headers=[(b"retry-after", str(wait).encode())],
                )
                return
            await send_error(
                send_with_id,
                DomainError(
                    Reason.UNAUTHENTICATED,
                    "missing, malformed, unknown or revoked API key (Authorization: Bearer sk_...)",
                ),
                headers=[(b"www-authenticate", b"Bearer")],
            )
            return
        auth.set_principal(principal)
        if (wait := await self.rate_limiter.retry_after(principal.api_key_id)) is not None:
            await send_error(
                send_with_id,
                DomainError(Reason.RATE_LIMITED, f"too many requests for this API key, retry in {wait} s"),
                headers=[(b"retry-after", str(wait).encode())],
            )
            return

        try:
            body = await _read_body(receive, self.max_body)
        except _TooLarge:
            await send_error(
                send_with_id, DomainError(Reason.REQUEST_TOO_LARGE, "request body is larger than 1 MiB"), status=413
            )
            return
        except _Incomplete:
            await send_error(
                send_with_id, DomainError(Reason.INVALID_ARGUMENT, "the request body ended early or is broken")
            )
            return
        receive = _replay_receive(body, receive)

        key = headers.get("idempotency-key")
        if key is None or scope["path"] not in self.mutating_paths:
            await self.app(scope, receive, send_with_id)
            return
        if not _valid_idempotency_key(key):
            await send_error(
                send_with_id,
                DomainError(
                    Reason.INVALID_IDEMPOTENCY_KEY, "Idempotency-Key must be 1..255 printable ASCII characters"
                ),
            )
            return
        try:
            content = _decoded(body, headers.get("content-encoding", ""), self.max_body)
        except _TooLarge:
            await send_error(
                send_with_id,
                DomainError(Reason.REQUEST_TOO_LARGE, "request body is larger than 1 MiB once decompressed"),
                status=413,
            )
            return
        except (OSError, zlib.error):
            await send_error(send_with_id, DomainError(Reason.INVALID_ARGUMENT, "request body is not valid gzip"))
            return
        request_hash = request_fingerprint(scope["path"], headers.get("content-type", ""), content)
        await self._idempotent(scope, receive, send_with_id, principal.api_key_id, key, request_hash)

    async def _idempotent(
        self, scope: Scope, receive: Receive, send: Send, api_key_id: str, key: str, request_hash: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idempotency_wait
        owner = uuid.uuid4().hex
        while True:
            stored = await idempotency.claim(
                self.ctx,
                api_key_id=api_key_id,
                key=key,
                request_hash=request_hash,
                owner=owner,
                lease=self.idempotency_lease,
            )
            if stored is None:
                break
            if stored.request_hash != request_hash:
                await send_error(
                    send,
                    DomainError(
                        Reason.IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key was used with a different request"
                    ),
                )
                return
            if replayable(stored.state):
                await self._replay(send, stored)
                return
            if loop.time() >= deadline:
                await send_error(
                    send,
                    DomainError(
                        Reason.IDEMPOTENCY_KEY_IN_USE, "a request with this Idempotency-Key is still being processed"
                    ),
                )
                return
            event = self._finished.setdefault((api_key_id, key), asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(0.05, max(0.0, deadline - loop.time())))

        # The answer is held back until it is stored (or the key released), so a client
        # that retries the moment it hears back never finds the key still running; and it is
        # stored in the transaction that holds the request's writes.
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        settled = False

        async with self.ctx.db.holding() as held:

            async def settle(status: int | None, body: bytes) -> bool:
                """Commit the answer with the request's writes (True), or undo them and free the key."""
                nonlocal settled
                settled = True
                try:
                    if status == _STORED_STATUS and start is not None:
                        headers = [
                            [k.decode("latin-1"), v.decode("latin-1")]
                            for k, v in start.get("headers", ())
                            if k.lower() not in _NOT_STORED_HEADERS
                        ]
                        try:
                            async with held.final() as uow:
                                await idempotency.finish(
                                    uow,
                                    api_key_id=api_key_id,
                                    key=key,
                                    owner=owner,
                                    status=status,
                                    headers=headers,
                                    body=body,
                                )
                            return True
                        except idempotency.LostClaim:
                            return False
                    # Not stored: nothing of it happened, and the client may fix it and retry.
                    await held.rollback()
                    await idempotency.release(self.ctx, api_key_id=api_key_id, key=key, owner=owner)
                    return True
                finally:
                    if (event := self._finished.pop((api_key_id, key), None)) is not None:
                        event.set()

            async def hold(message: dict[str, Any]) -> None:
                nonlocal start
                if message["type"] == "http.response.start":
                    start = message
                    return
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                assert start is not None
                if not await settle(start["status"], body):
                    # Outlived its lease and a retry took the key over: this run's writes are undone.
                    await send_error(
                        send,
                        DomainError(
                            Reason.IDEMPOTENCY_KEY_IN_USE,
                            "a request with this Idempotency-Key is still being processed",
                        ),
                    )
                    return
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})

            try:
                await self.app(scope, receive, hold)
            finally:
                if not settled:
                    await settle(None, b"")

    @staticmethod
    async def _replay(send: Send, stored: idempotency.Stored) -> None:
        body = stored.response_body or b""
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.response_headers or []]
        headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
        await send({"type": "http.response.start", "status": stored.response_status or 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
