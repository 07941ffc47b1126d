"""How the dashboard writes times, money and rates (Jinja2 filters)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from ..domain.money import format_amount


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


@functools.lru_cache(maxsize=4096)
def _money(amount: int, currency: str) -> str:
    return format_amount(amount, currency)


def money(amount: int | None, currency: str) -> str:
    """An amount for people; the Overview writes a hundred of them, mostly the same few."""
    return "" if amount is None else _money(amount, currency)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


FILTERS: dict[str, Any] = {"when": when, "iso": iso, "money": money, "percent": percent}
