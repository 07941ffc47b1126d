"""When to try a failed delivery again: a schedule with jitter (by default 5 s ... 6 h), for at most 3 days."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# Waits after attempt 1, 2, 3...; the last one repeats until the deadline.
SCHEDULE = tuple(timedelta(seconds=s) for s in (5, 30, 2 * 60, 10 * 60, 30 * 60, 60 * 60, 3 * 3600, 6 * 3600))
GIVE_UP_AFTER = timedelta(days=3)
# A receiver's Retry-After can ask for a longer wait than the schedule, up to this.
MAX_RETRY_AFTER = timedelta(hours=6)


def spread(seconds: float) -> float:
    """±10 % so retries of many deliveries do not arrive all at once."""
    return seconds * random.uniform(0.9, 1.1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule: tuple[timedelta, ...] = SCHEDULE
    give_up_after: timedelta = GIVE_UP_AFTER
    jitter: Callable[[float], float] = spread

    def next_attempt(
        self, attempt: int, first: datetime, now: datetime, retry_after: timedelta | None = None
    ) -> datetime | None:
        """When to make attempt `attempt + 1`, or None to give up (past `first` + `give_up_after`)."""
        wait = timedelta(seconds=self.jitter(self.schedule[min(attempt, len(self.schedule)) - 1].total_seconds()))
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        at = now + wait
        return at if at <= first + self.give_up_after else None


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or an HTTP date, clamped to MAX_RETRY_AFTER; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Clamp on the digits: a timedelta of 25 digits of seconds overflows.
        digits = value.lstrip("0") or "0"
        if len(digits) > 9:
            return MAX_RETRY_AFTER
        return min(timedelta(seconds=int(digits)), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when - now, timedelta(0)), MAX_RETRY_AFTER)
