"""The migrations and the tables in `store/tables.py` describe the same schema, with one head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import ENGINES, make_database
from tests.support import run_async
from toffeepay_server.store.database import async_url
from toffeepay_server.store.migrate import alembic_config, upgrade
from toffeepay_server.store.tables import metadata


@pytest.fixture(params=ENGINES)
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"


def test_migrated_schema_matches_the_tables(empty_db: str) -> None:
    upgrade(empty_db)

    async def drift() -> list[Any]:
        engine = create_async_engine(async_url(empty_db), poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                    )
                )
        finally:
            await engine.dispose()

    assert run_async(drift) == []
