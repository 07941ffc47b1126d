"""What every Connect answer passes last: error bodies completed, refusals explained, metrics counted.

The Connect router answers some requests it cannot take with an empty body (415 without a
JSON or proto Content-Type, 405 for GET on a mutating RPC, 404 for an unknown method).
Here each becomes a Connect error JSON that says what to do, and every error answer gets
its `google.rpc.ErrorInfo` detail if the layer that refused did not add one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from ..domain.errors import Reason, reason_message
from ..observability import metrics
from ..observability.request_id import request_id_of
from .errors import ERROR_INFO_TYPE, connect_code, error_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("toffeepay.api")
DOCS = "docs/api.md"
JSON_EXAMPLE = "curl -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer sk_test_...' -d '{...}'"


class ConnectEdge:
    """In front of the Connect services: `known` is every RPC path, `reads` those GET may call."""

    def __init__(self, *, known: Iterable[str], reads: Iterable[str]) -> None:
        self.known = set(known)
        self.reads = set(reads)
        self.services = sorted({path.rpartition("/")[0].lstrip("/") for path in self.known})

    async def serve(self, app: ASGIApp | None, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `app` (the service of this path, None when there is none) and complete its answer."""
        path = scope["path"]
        if app is None or path not in self.known:
            await self.refuse(scope, send, 404, Reason.UNKNOWN_METHOD, self.unknown_message(path))
            return
        started = time.perf_counter()
        service, _, method = path.lstrip("/").partition("/")
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        code = "ok"

        async def edge_send(message: dict[str, Any]) -> None:
            nonlocal start, code
            if message["type"] == "http.response.start":
                # The server's own time for the answer (Server-Timing), as the benchmarks read it.
                timing = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", ()), (b"server-timing", timing)]}
                if message["status"] == 200:
                    await send(message)
                else:
                    start = message  # held until the whole error body is known
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status, body = self.complete(scope, start["status"], b"".join(chunks))
            error = json.loads(body)
            code = error["code"]
            log.info("rpc refused", service=service, method=method, code=code, status=status, message=error["message"])
            headers = [
                (k, v) for k, v in start.get("headers", ()) if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        try:
            await app(scope, receive, edge_send)
        finally:
            metrics.rpc_answered(service, method, code, time.perf_counter() - started)

    def complete(self, scope: Scope, status: int, body: bytes) -> tuple[int, bytes]:
        """The error answer as it should be: Connect JSON carrying its ErrorInfo."""
        request_id = request_id_of(scope)
        try:
            error = json.loads(body) if body.strip() else None
        except ValueError:
            error = None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            details = error.get("details") or []
            if any(isinstance(d, dict) and d.get("type") == ERROR_INFO_TYPE for d in details):
                return status, body
            return status, error_body(error["code"], str(error.get("message", "")), request_id=request_id)
        reason, message = self.explain(scope, status)
        return status, error_body(connect_code(reason).value, message, reason=reason.value, request_id=request_id)

    def explain(self, scope: Scope, status: int) -> tuple[Reason, str]:
        """Why the router refused, and what to send instead."""
        path = scope["path"]
        method = path.rpartition("/")[2]
        if status == 405:
            verb = "takes POST (or GET with the Connect query encoding)" if path in self.reads else "changes state"
            return Reason.METHOD_NOT_ALLOWED, reason_message(
                Reason.METHOD_NOT_ALLOWED,
                f"{scope['method']} is not allowed here; {method} {verb}"
                f", so send POST with Content-Type: application/json, e.g. {JSON_EXAMPLE}",
            )
        if status == 415:
            sent = dict(scope.get("headers", ())).get(b"content-type", b"").decode("latin-1") or "none"
            return Reason.UNSUPPORTED_CONTENT_TYPE, reason_message(
                Reason.UNSUPPORTED_CONTENT_TYPE,
                f"Content-Type {sent} is not accepted; send "
                f"Content-Type: application/json (or application/proto), e.g. {JSON_EXAMPLE}",
            )
        if status == 404:
            return Reason.UNKNOWN_METHOD, self.unknown_message(path)
        return Reason.INVALID_ARGUMENT, reason_message(
            Reason.INVALID_ARGUMENT, f"the request was refused (HTTP {status})"
        )

    def unknown_message(self, path: str) -> str:
        service = path.lstrip("/").partition("/")[0]
        if service in self.services:
            methods = sorted(p.rpartition("/")[2] for p in self.known if p.startswith(f"/{service}/"))
            return reason_message(
                Reason.UNKNOWN_METHOD,
                f"{service} has no method {path.rpartition('/')[2]!r}; it has " + ", ".join(methods),
            )
        return reason_message(
            Reason.UNKNOWN_METHOD,
            f"no RPC at {path}; the API is POST /<service>/<method> with services "
            + ", ".join(self.services)
            + f" (every method is listed in {DOCS})",
        )

    async def refuse(self, scope: Scope, send: Send, status: int, reason: Reason, message: str) -> None:
        body = error_body(connect_code(reason).value, message, reason=reason.value, request_id=request_id_of(scope))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def is_rpc_path(path: str) -> bool:
    """Looks like `/package.Service/Method`: such paths get Connect answers, never web pages."""
    first, _, rest = path.lstrip("/").partition("/")
    return "." in first and first[:1].isalpha() and "/" not in rest
