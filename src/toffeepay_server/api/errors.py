"""One table from reason codes to Connect codes, the error body with its typed detail, and
the interceptor that applies them.

Every Connect error says its reason twice: as the prefix of its message ("invalid_currency:
...") and as a `google.rpc.ErrorInfo` detail (`reason`, `domain` "toffeepay.dev", and the
request id in `metadata`), which clients read without parsing text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from toffeepay._proto.google.rpc.error_details_pb import ErrorInfo

from ..domain.errors import DomainError, Reason
from ..store.database import is_outage

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
    Reason.PAYMENT_NOT_REFUNDABLE: Code.FAILED_PRECONDITION,
    Reason.IDEMPOTENCY_KEY_IN_USE: Code.ABORTED,
    Reason.RATE_LIMITED: Code.RESOURCE_EXHAUSTED,
    Reason.REQUEST_TOO_LARGE: Code.RESOURCE_EXHAUSTED,
    Reason.REQUEST_TIMEOUT: Code.DEADLINE_EXCEEDED,
    # Connect itself answers `unimplemented` (501) to an unknown Content-Encoding; a body the
    # server cannot read is the client's mistake, so it is refused as bad input (400).
    Reason.UNSUPPORTED_ENCODING: Code.INVALID_ARGUMENT,
    Reason.UNAVAILABLE: Code.UNAVAILABLE,
    Reason.INTERNAL: Code.INTERNAL,
    Reason.UNKNOWN_METHOD: Code.UNIMPLEMENTED,
    Reason.METHOD_NOT_ALLOWED: Code.UNIMPLEMENTED,
}


ERROR_DOMAIN = "toffeepay.dev"
ERROR_INFO_TYPE = "google.rpc.ErrorInfo"
# The reason prefix of a message: "invalid_currency: currency must be ...".
_REASON_PREFIX = re.compile(r"([a-z][a-z0-9_]*): ")


def connect_code(reason: Reason) -> Code:
    return CONNECT_CODE.get(reason, Code.INVALID_ARGUMENT)


def error_info(reason: str, request_id: str | None) -> ErrorInfo:
    return ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata={"request_id": request_id} if request_id else {})


def reason_of(code: str, message: str) -> str:
    """The reason code a message starts with, else the Connect code itself (e.g. `unimplemented`)."""
    match = _REASON_PREFIX.match(message)
    return match.group(1) if match else code


def error_body(code: str, message: str, *, reason: str | None = None, request_id: str | None = None) -> bytes:
    """A Connect error as JSON, with its ErrorInfo detail (`value` is unpadded base64, as Connect wants)."""
    info = error_info(reason or reason_of(code, message), request_id)
    detail = {
        "type": ERROR_INFO_TYPE,
        "value": base64.b64encode(info.to_binary()).decode().rstrip("="),
        "debug": json.loads(info.to_json()),
    }
    return json.dumps({"code": code, "message": message, "details": [detail]}, ensure_ascii=False).encode()


def to_connect(error: DomainError, request_id: str | None = None) -> ConnectError:
    return ConnectError(connect_code(error.reason), error.message, details=[error_info(error.reason.value, request_id)])


class ErrorInterceptor:
    """Domain refusals become Connect errors; anything unexpected becomes `internal`.

    The client never sees the text of an unexpected exception, only a request id to quote.
    """

    async def intercept_unary(self, call_next: Callable[[Any, Any], Awaitable[Any]], request: Any, ctx: Any, /) -> Any:
        request_id = ctx.request_headers.get("x-request-id", "")
        try:
            return await call_next(request, ctx)
        except DomainError as exc:
            raise to_connect(exc, request_id) from None
        except ConnectError:
            raise
        except Exception as exc:
            if is_outage(exc):
                log.warning("database unavailable", method=ctx.method.name, request_id=request_id)
                raise ConnectError(
                    Code.UNAVAILABLE,
                    "unavailable: the service is unavailable for a moment, retry shortly",
                    details=[error_info(Reason.UNAVAILABLE.value, request_id)],
                ) from None
            log.exception("unexpected error", method=ctx.method.name, request_id=request_id)
            raise ConnectError(
                Code.INTERNAL,
                f"internal: unexpected error, request id {request_id}",
                details=[error_info(Reason.INTERNAL.value, request_id)],
            ) from None
