"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import APIConnectionError, RateLimitError, ToffeePayError

_RETRY_STATUS = {408, 500, 502, 503, 504}


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, … up to 8 s."""

    initial: float = 0.5
    maximum: float = 8.0
    # A server asking to wait longer (Retry-After) is not retried: the error is raised at once.
    max_retry_after: float = 10.0

    def delay(self, retry: int, *, jitter: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `retry` (0 first), or None to give up.

        `jitter` is uniform in [0, 1); the wait is between half and all of the backoff.
        """
        if retry_after is not None:
            return max(0.0, retry_after) if retry_after <= self.max_retry_after else None
        base = min(self.initial * 2.0**retry, self.maximum)
        return base * (0.5 + jitter / 2)


def should_retry(error: ToffeePayError) -> bool:
    """Network failures, timeouts, 5xx, rate limits and a still-running twin request.

    Every mutating call carries one Idempotency-Key across its attempts, so a retry
    never performs the operation twice.
    """
    if isinstance(error, APIConnectionError | RateLimitError):
        return True
    if error.reason == "idempotency_key_in_use":
        return True
    return error.http_status in _RETRY_STATUS


def retry_after(value: str | None) -> float | None:
    """The Retry-After header in seconds (the HTTP-date form is ignored)."""
    try:
        return float(value) if value else None
    except ValueError:
        return None
