"""Paging and filter rules shared by every list RPC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import DomainError, Reason

MAX_LIMIT = 250


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int
    created_from: datetime | None
    created_to: datetime | None


def page(
    limit: int, offset: int, created_from: datetime | None, created_to: datetime | None, *, default_limit: int
) -> Page:
    if limit < 0 or limit > MAX_LIMIT:
        raise DomainError(Reason.INVALID_LIMIT, f"limit must be 0..{MAX_LIMIT} (0 means {default_limit}), got {limit}")
    if offset < 0:
        raise DomainError(Reason.INVALID_OFFSET, f"offset must be 0 or more, got {offset}")
    if created_from and created_to and created_from > created_to:
        raise DomainError(Reason.INVALID_TIME_RANGE, "from is after to")
    return Page(limit or default_limit, offset, created_from, created_to)
