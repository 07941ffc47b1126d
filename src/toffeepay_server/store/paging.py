"""What every list query shares: a created_at window, and one page plus the count of all matches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement


def created_between(
    column: Any, created_from: datetime | None, created_to: datetime | None
) -> list[ColumnElement[bool]]:
    """Inclusive bounds on a creation time; either may be open."""
    conditions = []
    if created_from is not None:
        conditions.append(column >= created_from)
    if created_to is not None:
        conditions.append(column <= created_to)
    return conditions


async def page_of(
    conn: AsyncConnection,
    table: Any,
    columns: Sequence[Any],
    conditions: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    limit: int,
    offset: int,
    count_limit: int | None = None,
    total: int | None = None,
) -> tuple[list[Any], int]:
    """The rows of one page and the number of rows matching in all (no page query past the end).

    With `count_limit`, counting stops there: a total equal to it means "at least that many"
    (the dashboard's lists, where an exact count of a large table costs more than the page).
    A `total` the caller knows (a count the database keeps) is taken as it is.
    """
    if total is None:
        total = await _count(conn, table, conditions, count_limit)
    if offset >= total:
        return [], total
    rows = await conn.execute(select(*columns).where(*conditions).order_by(*order_by).limit(limit).offset(offset))
    return list(rows), total


async def _count(
    conn: AsyncConnection, table: Any, conditions: Sequence[ColumnElement[bool]], limit: int | None
) -> int:
    """The rows matching `conditions`, counting no further than `limit` when given."""
    if limit is None:
        return int((await conn.execute(select(func.count()).select_from(table).where(*conditions))).scalar_one())
    matching = select(literal(1)).select_from(table).where(*conditions).limit(limit).subquery()
    return int((await conn.execute(select(func.count()).select_from(matching))).scalar_one())
