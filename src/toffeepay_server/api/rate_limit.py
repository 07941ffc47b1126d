"""Per-API-key request limits (`rate_limited`), counted by the `limits` library."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many, storage, strategies


class RateLimiter:
    def __init__(self, spec: str, storage_uri: str = "memory://") -> None:
        self.items: list[RateLimitItem] = [] if spec.strip().lower() in ("", "0", "off", "none") else parse_many(spec)
        self.limiter = strategies.FixedWindowRateLimiter(storage.storage_from_string(storage_uri)) if self.items else None

    def retry_after(self, api_key_id: str) -> int | None:
        """Count one request; None when allowed, else whole seconds until the window resets."""
        if self.limiter is None:
            return None
        for item in self.items:
            if not self.limiter.hit(item, api_key_id):
                reset = self.limiter.get_window_stats(item, api_key_id).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None
