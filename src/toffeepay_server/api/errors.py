"""One table from reason codes to Connect codes, and the interceptor that applies it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from ..domain.errors import DomainError, Reason

log = structlog.get_logger("toffeepay.api")

CONNECT_CODE: dict[Reason, Code] = {
    Reason.UNAUTHENTICATED: Code.UNAUTHENTICATED,
    Reason.INVALID_GAME_ID: Code.PERMISSION_DENIED,
    Reason.SANDBOX_ONLY: Code.PERMISSION_DENIED,
    Reason.NOT_FOUND: Code.NOT_FOUND,
    Reason.SESSION_EXPIRED: Code.FAILED_PRECONDITION,
    Reason.SESSION_NOT_PENDING: Code.FAILED_PRECONDITION,
    Reason.PAYMENT_IN_PROGRESS: Code.FAILED_PRECONDITION,
    Reason.SESSION_NOT_PAID: Code.FAILED_PRECONDITION,
    Reason.PROCESSOR_UNAVAILABLE: Code.FAILED_PRECONDITION,
    Reason.IDEMPOTENCY_KEY_IN_USE: Code.ABORTED,
    Reason.RATE_LIMITED: Code.RESOURCE_EXHAUSTED,
    Reason.REQUEST_TOO_LARGE: Code.RESOURCE_EXHAUSTED,
    Reason.INTERNAL: Code.INTERNAL,
}


def connect_code(reason: Reason) -> Code:
    return CONNECT_CODE.get(reason, Code.INVALID_ARGUMENT)


def to_connect(error: DomainError) -> ConnectError:
    return ConnectError(connect_code(error.reason), error.message)


class ErrorInterceptor:
    """Domain refusals become Connect errors; anything unexpected becomes `internal`.

    The client never sees the text of an unexpected exception, only a request id to quote.
    """

    async def intercept_unary(self, call_next: Callable[[Any, Any], Awaitable[Any]], request: Any, ctx: Any, /) -> Any:
        try:
            return await call_next(request, ctx)
        except DomainError as exc:
            raise to_connect(exc) from None
        except ConnectError:
            raise
        except Exception:
            request_id = ctx.request_headers.get("x-request-id", "")
            log.exception("unexpected error", method=ctx.method.name, request_id=request_id)
            raise ConnectError(Code.INTERNAL, f"internal: unexpected error, request id {request_id}") from None
