"""In front of every Connect service: body limit, API key and rate limit, idempotency.

The parts: `access` (who may call, how often), `replay` (the Idempotency-Key protocol,
kept at the HTTP layer so a replay is the first answer byte for byte). The gateway reads
the body within its limit, composes them, and turns its own failures into Connect errors.
"""

from __future__ import annotations

import zlib
from datetime import timedelta
from typing import Any

import structlog

from ..domain.errors import DomainError, Reason
from ..observability.request_id import request_id_of
from ..services.context import ServiceContext, is_outage
from .access import Access, Refusal
from .rate_limit import RateLimiter
from .replay import IDEMPOTENCY_LEASE, IdempotentReplay, request_fingerprint, valid_idempotency_key
from .respond import ASGIApp, Receive, Scope, Send, send_error

__all__ = ["IDEMPOTENCY_LEASE", "ApiGateway", "request_fingerprint", "send_error"]

log = structlog.get_logger("toffeepay.api")

_TOO_LARGE = DomainError(Reason.REQUEST_TOO_LARGE, "request body is larger than 1 MiB")


class _TooLarge(Exception):
    pass


class _Incomplete(Exception):
    pass


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


def _declared_length(headers: dict[str, str]) -> int:
    try:
        return int(headers.get("content-length") or 0)
    except ValueError:
        return 0


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
        self.mutating_paths = mutating_paths
        self.max_body = max_body
        self.access = Access(ctx, rate_limiter=rate_limiter, public_limiter=public_limiter)
        self.idempotent = IdempotentReplay(app, ctx, wait=idempotency_wait, lease=idempotency_lease)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request id (request header and answer header) is set by RequestIds, in front of every route.
        started = False

        async def send_tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._serve(scope, receive, send_tracked)
        except Exception as exc:
            # Whatever went wrong here, the client gets a Connect error, never a bare 500
            # nor the exception's text: the request id is what it can quote.
            if not started:
                await send_error(send_tracked, _failure(exc, request_id_of(scope) or ""))

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if _declared_length(headers) > self.max_body:
            await send_error(send, _TOO_LARGE, status=413)
            return
        principal = await self.access.admit(scope, headers.get("authorization"))
        if isinstance(principal, Refusal):
            await send_error(send, principal.error, headers=principal.headers)
            return
        try:
            body = await _read_body(receive, self.max_body)
        except _TooLarge:
            await send_error(send, _TOO_LARGE, status=413)
            return
        except _Incomplete:
            await send_error(send, DomainError(Reason.INVALID_ARGUMENT, "the request body ended early or is broken"))
            return
        receive = _replay_receive(body, receive)
        key = headers.get("idempotency-key")
        if key is None or scope["path"] not in self.mutating_paths:
            await self.app(scope, receive, send)
            return
        request_hash = await self._fingerprint(scope, send, headers, key, body)
        if request_hash is not None:
            await self.idempotent(
                scope, receive, send, api_key_id=principal.api_key_id, key=key, request_hash=request_hash
            )

    async def _fingerprint(
        self, scope: Scope, send: Send, headers: dict[str, str], key: str, body: bytes
    ) -> str | None:
        """The request's idempotency fingerprint; None once a refusal of the key or body is sent."""
        if not valid_idempotency_key(key):
            await send_error(
                send,
                DomainError(
                    Reason.INVALID_IDEMPOTENCY_KEY, "Idempotency-Key must be 1..255 printable ASCII characters"
                ),
            )
            return None
        try:
            content = _decoded(body, headers.get("content-encoding", ""), self.max_body)
        except _TooLarge:
            await send_error(
                send,
                DomainError(Reason.REQUEST_TOO_LARGE, "request body is larger than 1 MiB once decompressed"),
                status=413,
            )
            return None
        except (OSError, zlib.error):
            await send_error(send, DomainError(Reason.INVALID_ARGUMENT, "request body is not valid gzip"))
            return None
        return request_fingerprint(scope["path"], headers.get("content-type", ""), content)


def _failure(exc: Exception, request_id: str) -> DomainError:
    if is_outage(exc):
        log.warning("database unavailable", request_id=request_id, error=type(exc).__name__)
        return DomainError(Reason.UNAVAILABLE, "the service is unavailable for a moment, retry shortly")
    log.exception("unexpected error in the API gateway", request_id=request_id)
    return DomainError(Reason.INTERNAL, f"unexpected error, request id {request_id}")
