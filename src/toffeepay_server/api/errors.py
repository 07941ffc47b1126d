"""One total table from reason codes to Connect codes and HTTP statuses, the error body with
its typed detail, and the interceptor that applies them.

Every Connect error says its reason twice: as the prefix of its message ("invalid_currency:
...") and as a `google.rpc.ErrorInfo` detail (`reason`, `domain` "toffeepay.dev", and the
request id in `metadata`), which clients read without parsing text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from toffeepay._proto.google.rpc.error_details_pb import ErrorInfo

from ..domain.errors import DomainError, Reason
from ..services.context import is_outage

log = structlog.get_logger("toffeepay.api")


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """What a client sees for one reason: its Connect code and the HTTP status it arrives with."""

    code: Code
    http_status: int


_INVALID = ErrorKind(Code.INVALID_ARGUMENT, 400)
_PRECONDITION = ErrorKind(Code.FAILED_PRECONDITION, 400)

# Every reason, none left to a default (docs/api.md, Errors, lists the same table; a unit test
# compares them). The HTTP status is Connect's for the code, except where the refusal comes
# before any RPC runs and HTTP has a more precise status (413, 408, 404, 405, 415).
ERRORS: dict[Reason, ErrorKind] = {
    Reason.UNAUTHENTICATED: ErrorKind(Code.UNAUTHENTICATED, 401),
    Reason.INVALID_GAME_ID: ErrorKind(Code.PERMISSION_DENIED, 403),
    Reason.SANDBOX_ONLY: ErrorKind(Code.PERMISSION_DENIED, 403),
    Reason.INVALID_ARGUMENT: _INVALID,
    Reason.INVALID_CURRENCY: _INVALID,
    Reason.INVALID_PRICE: _INVALID,
    Reason.INVALID_IMAGE: _INVALID,
    Reason.INVALID_RETURN_URL: _INVALID,
    Reason.INVALID_METADATA: _INVALID,
    Reason.INVALID_LIMIT: _INVALID,
    Reason.INVALID_OFFSET: _INVALID,
    Reason.INVALID_STATUS: _INVALID,
    Reason.INVALID_TIME_RANGE: _INVALID,
    Reason.INVALID_EXPIRES_AT: _INVALID,
    Reason.INVALID_IDEMPOTENCY_KEY: _INVALID,
    Reason.IDEMPOTENCY_KEY_REUSED: _INVALID,
    Reason.INVALID_URL: _INVALID,
    Reason.INVALID_EVENT_TYPE: _INVALID,
    Reason.INVALID_FORMAT: _INVALID,
    Reason.INVALID_REFUND_AMOUNT: _INVALID,
    # Connect itself answers `unimplemented` (501) to an unknown Content-Encoding; a body the
    # server cannot read is the client's mistake, so it is refused as bad input (400).
    Reason.UNSUPPORTED_ENCODING: _INVALID,
    Reason.NOT_FOUND: ErrorKind(Code.NOT_FOUND, 404),
    Reason.SESSION_EXPIRED: _PRECONDITION,
    Reason.SESSION_NOT_PENDING: _PRECONDITION,
    Reason.PAYMENT_IN_PROGRESS: _PRECONDITION,
    Reason.SESSION_NOT_PAID: _PRECONDITION,
    Reason.ENDPOINT_DISABLED: _PRECONDITION,
    Reason.PAYMENT_NOT_REFUNDABLE: _PRECONDITION,
    Reason.PROCESSOR_UNAVAILABLE: _PRECONDITION,
    Reason.IDEMPOTENCY_KEY_IN_USE: ErrorKind(Code.ABORTED, 409),
    Reason.RATE_LIMITED: ErrorKind(Code.RESOURCE_EXHAUSTED, 429),
    Reason.REQUEST_TOO_LARGE: ErrorKind(Code.RESOURCE_EXHAUSTED, 413),
    Reason.REQUEST_TIMEOUT: ErrorKind(Code.DEADLINE_EXCEEDED, 408),
    Reason.UNAVAILABLE: ErrorKind(Code.UNAVAILABLE, 503),
    Reason.INTERNAL: ErrorKind(Code.INTERNAL, 500),
    Reason.UNKNOWN_METHOD: ErrorKind(Code.UNIMPLEMENTED, 404),
    Reason.METHOD_NOT_ALLOWED: ErrorKind(Code.UNIMPLEMENTED, 405),
    Reason.UNSUPPORTED_CONTENT_TYPE: ErrorKind(Code.INVALID_ARGUMENT, 415),
}


ERROR_DOMAIN = "toffeepay.dev"
ERROR_INFO_TYPE = "google.rpc.ErrorInfo"
# The reason prefix of a message: "invalid_currency: currency must be ...".
_REASON_PREFIX = re.compile(r"([a-z][a-z0-9_]*): ")


def connect_code(reason: Reason) -> Code:
    return ERRORS[reason].code


def http_status(reason: Reason) -> int:
    return ERRORS[reason].http_status


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
                unavailable = DomainError(Reason.UNAVAILABLE, "the service is unavailable for a moment, retry shortly")
                raise to_connect(unavailable, request_id) from None
            log.exception("unexpected error", method=ctx.method.name, request_id=request_id)
            internal = DomainError(Reason.INTERNAL, f"unexpected error, request id {request_id}")
            raise to_connect(internal, request_id) from None
