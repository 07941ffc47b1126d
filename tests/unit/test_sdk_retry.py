"""The SDK's pure parts: errors from Connect errors, the retry decision, the backoff."""

from __future__ import annotations

import pytest
import toffeepay
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from toffeepay._retry import Backoff, retry_after, should_retry
from toffeepay.errors import from_connect


@pytest.mark.parametrize(
    ("code", "message", "status", "cls", "reason"),
    [
        (
            Code.INVALID_ARGUMENT,
            "invalid_currency: 'XXX' is not active",
            400,
            toffeepay.InvalidRequestError,
            "invalid_currency",
        ),
        (Code.UNAUTHENTICATED, "unauthenticated: missing key", 401, toffeepay.AuthenticationError, "unauthenticated"),
        (
            Code.PERMISSION_DENIED,
            "sandbox_only: use a sandbox key",
            403,
            toffeepay.PermissionDeniedError,
            "sandbox_only",
        ),
        (Code.NOT_FOUND, "not_found: no session", 404, toffeepay.NotFoundError, "not_found"),
        (
            Code.FAILED_PRECONDITION,
            "session_expired: too late",
            400,
            toffeepay.FailedPreconditionError,
            "session_expired",
        ),
        (Code.ABORTED, "idempotency_key_in_use: still running", 409, toffeepay.ConflictError, "idempotency_key_in_use"),
        (Code.RESOURCE_EXHAUSTED, "rate_limited: slow down", 429, toffeepay.RateLimitError, "rate_limited"),
        (
            Code.RESOURCE_EXHAUSTED,
            "request_too_large: over 1 MiB",
            413,
            toffeepay.InvalidRequestError,
            "request_too_large",
        ),
        (Code.INTERNAL, "internal: unexpected error, request id req_1", 500, toffeepay.APIError, "internal"),
        (Code.UNAVAILABLE, "Service Unavailable", 503, toffeepay.APIError, None),
        (Code.UNAVAILABLE, "connection refused", None, toffeepay.APIConnectionError, None),
        (Code.DEADLINE_EXCEEDED, "Request timed out", None, toffeepay.APITimeoutError, None),
    ],
)
def test_from_connect(code: Code, message: str, status: int | None, cls: type, reason: str | None) -> None:
    error = from_connect(ConnectError(code, message), http_status=status, request_id="req_1" if status else None)
    assert type(error) is cls
    assert error.code == code.value and error.reason == reason and error.http_status == status
    assert error.message == (message.split(": ", 1)[1] if reason else message)


def test_should_retry() -> None:
    def error(
        cls: type[toffeepay.ToffeePayError], status: int | None, reason: str | None = None
    ) -> toffeepay.ToffeePayError:
        return cls("x", reason=reason, http_status=status)

    assert should_retry(error(toffeepay.APIConnectionError, None))
    assert should_retry(error(toffeepay.APITimeoutError, None))
    assert should_retry(error(toffeepay.APIError, 503))
    assert should_retry(error(toffeepay.APIError, 500, "internal"))
    assert should_retry(error(toffeepay.RateLimitError, 429, "rate_limited"))
    assert should_retry(error(toffeepay.ConflictError, 409, "idempotency_key_in_use"))
    assert not should_retry(error(toffeepay.APIError, 501))
    assert not should_retry(error(toffeepay.InvalidRequestError, 400, "invalid_price"))
    assert not should_retry(error(toffeepay.FailedPreconditionError, 400, "session_not_pending"))
    assert not should_retry(error(toffeepay.AuthenticationError, 401, "unauthenticated"))


def test_backoff_grows_with_jitter_and_honours_short_retry_after() -> None:
    backoff = Backoff()
    assert [backoff.delay(n, jitter=0.0) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert [backoff.delay(n, jitter=0.999999) for n in range(2)] == pytest.approx([0.5, 1.0])
    assert backoff.delay(0, jitter=0.5, retry_after=3) == 3
    assert backoff.delay(0, jitter=0.5, retry_after=45) is None  # too long to block a caller: raise at once
    assert retry_after("2") == 2.0 and retry_after(None) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
