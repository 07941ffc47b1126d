"""ASGI types and the Connect error answer the gateway's parts send themselves."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..domain.errors import DomainError
from .errors import connect_code, http_status

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
