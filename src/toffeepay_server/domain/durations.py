"""Durations as operators write them in settings: `10m`, `90s`, `1h`, `3d`, `250ms`."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> timedelta:
    """A duration; a bare number is seconds. Raises ValueError naming what it could not read."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (write e.g. 90s, 10m, 1h, 3d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_positive(text: str) -> timedelta:
    """A duration longer than zero."""
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"{text.strip()!r} must be longer than zero")
    return value


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """Comma-separated durations, at least one; each longer than zero."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError("the schedule is empty (write e.g. 5s,30s,2m,10m,30m,1h,3h,6h)")
    if not all(parts):
        raise ValueError(f"{text.strip()!r} has an empty entry between commas")
    return tuple(parse_positive(part) for part in parts)
