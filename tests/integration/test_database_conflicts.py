"""A deadlock that PostgreSQL breaks by rolling one transaction back is a moment's unavailability
(the client may send the request again), not an internal error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import make_database
from tests.support import run_async
from toffeepay_server.store.database import async_url, is_outage


@pytest.fixture
def postgres(tmp_path) -> Iterator[str]:
    yield from make_database("postgresql", tmp_path)


def test_a_real_deadlock_counts_as_a_moment_of_unavailability(postgres: str) -> None:
    async def deadlock() -> BaseException:
        engine = create_async_engine(async_url(postgres), poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int)"))
                await conn.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
            both_locked_one = asyncio.Barrier(2)

            async def cross(first: int, second: int) -> None:
                async with engine.begin() as conn:
                    await conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": first})
                    await both_locked_one.wait()
                    await conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": second})

            results = await asyncio.gather(cross(1, 2), cross(2, 1), return_exceptions=True)
        finally:
            await engine.dispose()
        (failure,) = [r for r in results if isinstance(r, BaseException)]
        return failure

    failure = run_async(deadlock)
    assert isinstance(failure, DBAPIError) and getattr(failure.orig, "sqlstate", None) == "40P01"
    assert is_outage(failure)


def test_a_statement_mistake_is_not_an_outage(postgres: str) -> None:
    async def duplicate() -> BaseException:
        engine = create_async_engine(async_url(postgres), poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE one (id int PRIMARY KEY)"))
            try:
                async with engine.begin() as conn:
                    await conn.execute(text("INSERT INTO one VALUES (1), (1)"))
            except DBAPIError as exc:
                return exc
            raise AssertionError("the duplicate key was accepted")
        finally:
            await engine.dispose()

    assert not is_outage(run_async(duplicate))
