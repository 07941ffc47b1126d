"""The exceptions the client raises: one shallow tree, each carrying the API's reason code."""

from __future__ import annotations

import re

from connectrpc.code import Code
from connectrpc.errors import ConnectError

# Every API refusal reads "<reason>: <sentence>", e.g. "invalid_currency: ...".
_REASON = re.compile(r"([a-z][a-z0-9_]*): (.*)", re.DOTALL)


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
        code: str = Code.UNKNOWN.value,
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


_BY_CODE: dict[Code, type[ToffeePayError]] = {
    Code.UNAUTHENTICATED: AuthenticationError,
    Code.PERMISSION_DENIED: PermissionDeniedError,
    Code.INVALID_ARGUMENT: InvalidRequestError,
    Code.OUT_OF_RANGE: InvalidRequestError,
    Code.NOT_FOUND: NotFoundError,
    Code.FAILED_PRECONDITION: FailedPreconditionError,
    Code.ALREADY_EXISTS: ConflictError,
    Code.ABORTED: ConflictError,
}


def from_connect(exc: ConnectError, *, http_status: int | None, request_id: str | None) -> ToffeePayError:
    """The SDK exception for a Connect error; `http_status` is None when no answer arrived."""
    if http_status is None and exc.code in (Code.DEADLINE_EXCEEDED, Code.UNAVAILABLE, Code.CANCELED):
        cls: type[ToffeePayError] = APITimeoutError if exc.code is Code.DEADLINE_EXCEEDED else APIConnectionError
        return cls(exc.message or "no answer from the API", code=exc.code.value)
    reason, message = None, exc.message
    if match := _REASON.fullmatch(exc.message):
        reason, message = match.group(1), match.group(2)
    if exc.code is Code.RESOURCE_EXHAUSTED:
        cls = RateLimitError if reason == "rate_limited" else InvalidRequestError
    else:
        cls = _BY_CODE.get(exc.code, APIError)
    return cls(message, code=exc.code.value, reason=reason, request_id=request_id, http_status=http_status)
