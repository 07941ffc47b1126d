"""Per-API-key request limits (`rate_limited`), counted by the `limits` library."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many, storage, strategies

# Windows kept before the expired ones are dropped (one per API key and limit in use).
_MAX_LOCAL_WINDOWS = 10_000


class _LocalWindows:
    """The fixed windows of `limits`' FixedWindowRateLimiter, counted in this process.

    Same rule as `limits` with `memory://`: a key's window opens at its first hit and lasts
    the limit's period; every hit counts, and one over the limit is refused until the window
    ends. `limits`' MemoryStorage expires keys on a timer thread that it starts again every
    10 ms under load, which cost a tenth of a CreateSession; here a window simply ends when
    the next hit finds it past its end. All calls come from the event loop's thread.
    """

    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}  # key -> [ends_at, hits]

    def hit(self, key: str, period: int, limit: int, now: float) -> float | None:
        """Count one hit; None when allowed, else the time its window ends."""
        window = self._windows.get(key)
        if window is None or window[0] <= now:
            if len(self._windows) >= _MAX_LOCAL_WINDOWS:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            window = self._windows[key] = [now + period, 0]
        window[1] += 1
        return None if window[1] <= limit else window[0]


class RateLimiter:
    def __init__(self, spec: str, storage_uri: str = "memory://") -> None:
        self.items: list[RateLimitItem] = [] if spec.strip().lower() in ("", "0", "off", "none") else parse_many(spec)
        self.local = _LocalWindows() if self.items and storage_uri.strip() == "memory://" else None
        self.limiter = (
            strategies.FixedWindowRateLimiter(storage.storage_from_string(storage_uri))
            if self.items and self.local is None
            else None
        )

    def retry_after(self, api_key_id: str) -> int | None:
        """Count one request; None when allowed, else whole seconds until the window resets."""
        if self.local is not None:
            now = time.time()
            for item in self.items:
                ends = self.local.hit(item.key_for(api_key_id), item.get_expiry(), item.amount, now)
                if ends is not None:
                    return max(1, math.ceil(ends - now))
            return None
        if self.limiter is None:
            return None
        for item in self.items:
            if not self.limiter.hit(item, api_key_id):
                reset = self.limiter.get_window_stats(item, api_key_id).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None
