"""The exceptions the client raises: one shallow tree, each carrying the API's reason code.

Standard library only at import time, so `except toffeepay.ToffeePayError` costs nothing to
a module that never makes a call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectrpc.errors import ConnectError

# Every API refusal reads "<reason>: <sentence>", e.g. "invalid_currency: ...".
_REASON = re.compile(r"([a-z][a-z0-9_]*): (.*)", re.DOTALL)
ERROR_INFO = "google.rpc.ErrorInfo"
ERROR_DOMAIN = "toffeepay.dev"


class ToffeePayError(Exception):
    """Base of every error the client raises.

    Attributes:
        code: the Connect code, e.g. ``"invalid_argument"``.
        reason: the API's reason code, e.g. ``"invalid_currency"`` (None when the
            answer did not come from the API, e.g. a refused connection).
        message: the human sentence, without the reason prefix.
        request_id: the ``x-request-id`` of the answer, to quote to an operator.
        http_status: the HTTP status, or None when no answer arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "unknown",
        reason: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.request_id = request_id
        self.http_status = http_status

    def __str__(self) -> str:
        text = f"{self.reason}: {self.message}" if self.reason else self.message
        return f"{text} (request id {self.request_id})" if self.request_id else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class APIConnectionError(ToffeePayError):
    """No answer from the API: refused connection, reset, DNS failure."""


class APITimeoutError(APIConnectionError):
    """No answer within the timeout."""


class AuthenticationError(ToffeePayError):
    """Missing, unknown or revoked API key (``unauthenticated``)."""


class PermissionDeniedError(ToffeePayError):
    """The key may not do this, e.g. ``invalid_game_id`` or ``sandbox_only``."""


class InvalidRequestError(ToffeePayError):
    """The request is wrong and retrying it unchanged will not help (``invalid_argument``)."""


class ArgumentError(InvalidRequestError, ValueError):
    """An argument the API would refuse, found before sending anything (never retried).

    Attributes:
        argument: the argument at fault, e.g. ``"item.price"``.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}", code="invalid_argument", reason="invalid_argument")
        self.argument = argument


class NotFoundError(ToffeePayError):
    """No such object for this key (``not_found``)."""


class FailedPreconditionError(ToffeePayError):
    """The object's state does not allow it, e.g. ``session_not_pending``."""


class ConflictError(ToffeePayError):
    """A request with the same Idempotency-Key is still running (``idempotency_key_in_use``)."""


class RateLimitError(ToffeePayError):
    """Too many requests for this key (``rate_limited``)."""


class APIError(ToffeePayError):
    """Anything else the API answered, e.g. ``internal`` or ``unavailable``."""


_BY_CODE: dict[str, type[ToffeePayError]] = {
    "unauthenticated": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "invalid_argument": InvalidRequestError,
    "out_of_range": InvalidRequestError,
    "not_found": NotFoundError,
    "failed_precondition": FailedPreconditionError,
    "already_exists": ConflictError,
    "aborted": ConflictError,
}
_NO_ANSWER = {"deadline_exceeded", "unavailable", "canceled"}


def _error_info(exc: ConnectError) -> tuple[str | None, str | None]:
    """The reason and request id of the error's `google.rpc.ErrorInfo` detail, if it has one."""
    from ._proto.google.rpc.error_details_pb import ErrorInfo

    for detail in exc.details:
        if detail.type_name != ERROR_INFO:
            continue
        info = detail.value(ErrorInfo)
        if info is not None and info.domain == ERROR_DOMAIN and info.reason:
            return info.reason, info.metadata.get("request_id") or None
    return None, None


def from_connect(exc: ConnectError, *, http_status: int | None, request_id: str | None) -> ToffeePayError:
    """The SDK exception for a Connect error; `http_status` is None when no answer arrived.

    The reason comes from the error's ErrorInfo detail; the "<reason>: " prefix of the
    message is read only from servers that send no detail.
    """
    code = exc.code.value
    if http_status is None and code in _NO_ANSWER:
        cls: type[ToffeePayError] = APITimeoutError if code == "deadline_exceeded" else APIConnectionError
        return cls(exc.message or "no answer from the API", code=code)
    reason, detail_request_id = _error_info(exc)
    message = exc.message
    match = _REASON.fullmatch(message)
    if match and (reason is None or match.group(1) == reason):
        reason, message = match.group(1), match.group(2)
    if code == "resource_exhausted":
        cls = RateLimitError if reason == "rate_limited" else InvalidRequestError
    else:
        cls = _BY_CODE.get(code, APIError)
    return cls(message, code=code, reason=reason, request_id=request_id or detail_request_id, http_status=http_status)
