"""A request id for every HTTP request: in the logs, the `X-Request-Id` answer header and errors.

Ids are made here, never taken from the client, so one id names one request of this server.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def request_id_of(scope: Mapping[str, Any]) -> str | None:
    """The id `RequestIds` gave this request (also readable as its `x-request-id` header)."""
    return scope.get("state", {}).get("request_id")


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope["state"] = {**scope.get("state", {}), "request_id": request_id}
        scope["headers"] = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != HEADER]
        scope["headers"].append((HEADER, request_id.encode()))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)
