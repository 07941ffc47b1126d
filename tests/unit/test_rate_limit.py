"""The in-process fixed windows behind `TOFFEEPAY_RATE_LIMIT_STORAGE=memory://` (the default)."""

from __future__ import annotations

from toffeepay_server.api import rate_limit
from toffeepay_server.api.rate_limit import RateLimiter, _LocalWindows


def test_a_window_opens_at_the_first_hit_and_refuses_past_the_limit_until_it_ends() -> None:
    windows = _LocalWindows()
    assert [windows.hit("k", 60, 3, 100.0 + i) for i in range(3)] == [None, None, None]
    assert windows.hit("k", 60, 3, 130.0) == 160.0  # refused until the window opened at 100 ends
    assert windows.hit("k", 60, 3, 159.9) == 160.0
    assert windows.hit("k", 60, 3, 160.0) is None  # a new window
    assert windows.hit("other", 60, 3, 130.0) is None  # keys are counted apart


def test_expired_windows_are_dropped_when_too_many_are_kept(monkeypatch) -> None:
    monkeypatch.setattr(rate_limit, "_MAX_LOCAL_WINDOWS", 3)
    windows = _LocalWindows()
    for i, key in enumerate("abc"):
        windows.hit(key, 10, 1, float(i))
    windows.hit("d", 10, 1, 11.5)  # a and b have ended and go; c (ends at 12) stays
    assert sorted(windows._windows) == ["c", "d"]
    assert windows.hit("c", 10, 1, 11.6) == 12.0


async def test_the_limiter_counts_each_limit_and_says_when_to_retry() -> None:
    limiter = RateLimiter("2/minute;100/hour")
    assert limiter.local is not None
    assert [await limiter.retry_after("key_1") for _ in range(2)] == [None, None]
    wait = await limiter.retry_after("key_1")
    assert wait is not None and 1 <= wait <= 60
    assert await limiter.retry_after("key_2") is None
    assert await RateLimiter("off").retry_after("key_1") is None
