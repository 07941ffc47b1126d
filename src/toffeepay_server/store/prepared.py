"""Hot statements compiled once and run on the driver's own connection.

SQLAlchemy Core builds each statement's SQL and type conversions; on the busiest paths
(the API key on every request, reading and creating a session, appending events, the
webhook dispatcher's fan-out, leases and records) its per-call execution layer (execution
context, cache-key lookup, result wrapping, one greenlet switch per call) costs many times
the database work it carries. A `Prepared` statement is compiled by SQLAlchemy once per
dialect, with the same column types (so the same bind and result conversions, `Instant` and
`JsonText` included), and is then run straight on the connection SQLAlchemy opened:
`sqlite3` on SQLite (no thread hop, see sqlite_inline.py), asyncpg on PostgreSQL, whose
per-connection statement cache prepares each statement once per connection.

It runs inside the caller's transaction: on PostgreSQL the transaction SQLAlchemy would
begin lazily is begun first.

A list of values (ids, positions) is bound as one parameter (`among`), so a statement keeps
one text whatever the list's length: an array on PostgreSQL (`= ANY`), JSON text read by
`json_each` on SQLite. Such a statement differs per engine: `Prepared` then takes a function
of the engine's name that builds it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ARRAY, Table, Text, TypeDecorator, all_, any_, bindparam, func, insert, literal_column, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement, ColumnElement, Select

from .sqlite_inline import InlineConnection

_Processor = Callable[[Any], Any] | None


class _Compiled:
    __slots__ = ("binds", "results", "sql")

    def __init__(self, sql: str, binds: list[tuple[str | None, _Processor, Any]], results: list[_Processor]) -> None:
        self.sql = sql
        # (name, conversion, None) for a named parameter; (None, None, value) for a value the
        # statement itself carries (`status == "pending"`), converted once.
        self.binds = binds
        self.results = results

    def parameters(self, values: dict[str, Any]) -> list[Any]:
        out = []
        for name, process, constant in self.binds:
            if name is None:
                out.append(constant)
                continue
            value = values[name]
            out.append(value if process is None else process(value))
        return out

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        pairs = zip(raw, self.results, strict=True)
        return tuple(value if process is None else process(value) for value, process in pairs)


class Prepared:
    """A statement with named bind parameters, compiled on first use for each dialect.

    `statement` is the statement, or a function of the engine's name ("sqlite",
    "postgresql") that builds it, for statements whose text differs per engine.
    """

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement]) -> None:
        self._build = statement
        self._built: dict[str, ClauseElement] = {}
        # Per dialect object: each engine's carries its own installation key (Sealed columns).
        self._compiled: WeakKeyDictionary[Dialect, _Compiled] = WeakKeyDictionary()

    def statement(self, engine: str) -> ClauseElement:
        found = self._built.get(engine)
        if found is None:
            build = self._build
            found = self._built[engine] = build if isinstance(build, ClauseElement) else build(engine)
        return found

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect)
        if found is None:
            found = self._compiled[dialect] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled: Any = self.statement(dialect.name).compile(dialect=dialect)
        if compiled.positiontup is None:
            raise TypeError(f"{dialect.name} does not use positional parameters")
        binds: list[tuple[str | None, _Processor, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            process = bind.type._cached_bind_processor(dialect)
            if bind.required:
                binds.append((name, process, None))
            else:
                value = bind.effective_value
                binds.append((None, None, value if process is None else process(value)))
        results = [column[3]._cached_result_processor(dialect, None) for column in compiled._result_columns]
        return _Compiled(str(compiled), binds, results)


def insert_of(table: Table, columns: Sequence[str]) -> Prepared:
    """An INSERT of one row of `table` with these columns (the others take their defaults)."""
    return Prepared(insert(table).values({name: bindparam(name) for name in columns}))


class _JsonList(TypeDecorator[Sequence[Any]]):
    """A list bound as JSON text (SQLite's `json_each` reads it)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(list(value))


def among(engine: str, column: ColumnElement[Any], name: str, *, negate: bool = False) -> ColumnElement[bool]:
    """`column` is (with `negate`, is not) one of the list bound as `name` (a list of strings or
    integers; an empty one matches nothing, or with `negate` everything), in one statement text
    whatever the list's length: `= ANY($n)` / `<> ALL($n)` on PostgreSQL, `IN (SELECT value FROM
    json_each(?))` on SQLite, where the list's values are looked up one by one in `column`'s
    index, as an IN list of parameters would be."""
    if engine == "postgresql":
        values = bindparam(name, type_=ARRAY(column.type))
        return column != all_(values) if negate else column == any_(values)
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(name, type_=_JsonList()))
    )
    return column.not_in(listed) if negate else column.in_(listed)


class Direct:
    """A driver connection used without SQLAlchemy, for point reads outside any transaction
    (`Database.point_read()`): an inline `sqlite3` connection, or an asyncpg one."""

    __slots__ = ("dialect", "raw")

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect


Connection = AsyncConnection | Direct


async def _driver(conn: Connection) -> tuple[Any, Dialect] | None:
    """The driver's connection under `conn`, inside `conn`'s transaction; None for a SQLite
    connection that runs on aiosqlite's thread (its statements go through SQLAlchemy)."""
    if isinstance(conn, Direct):
        return conn.raw, conn.dialect
    sync = conn.sync_connection
    assert sync is not None
    fairy: Any = sync.connection
    dialect = sync.dialect
    adapted = fairy.dbapi_connection
    if dialect.name == "sqlite":
        if not isinstance(adapted._connection, InlineConnection):
            return None
        return adapted._connection._conn, dialect
    # asyncpg: SQLAlchemy begins its transaction at the first statement it runs itself.
    if adapted._transaction is None and sync.in_transaction() and adapted.isolation_level != "autocommit":
        await adapted._start_transaction()
    return adapted._connection, dialect


def _is_inline(raw: Any) -> bool:
    return isinstance(raw, sqlite3.Connection)


async def fetch_all(conn: Connection, prepared: Prepared, values: dict[str, Any]) -> list[tuple[Any, ...]]:
    if (driver := await _driver(conn)) is None:
        assert isinstance(conn, AsyncConnection)
        return [tuple(row) for row in await conn.execute(prepared.statement(conn.dialect.name), values)]  # type: ignore[call-overload]
    raw, dialect = driver
    compiled = prepared.compiled(dialect)
    params = compiled.parameters(values)
    try:
        if _is_inline(raw):
            found = raw.execute(compiled.sql, params).fetchall()
        else:
            found = await raw.fetch(compiled.sql, *params)
    except Exception as exc:
        raise _translated(conn, exc, compiled.sql) from exc
    return [compiled.row(raw_row) for raw_row in found]


async def fetch_one(conn: Connection, prepared: Prepared, values: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row, for statements that find one row by a key."""
    rows = await fetch_all(conn, prepared, values)
    return rows[0] if rows else None


async def execute(conn: Connection, prepared: Prepared, values: dict[str, Any]) -> int:
    """Run one statement; returns how many rows it changed."""
    if (driver := await _driver(conn)) is None:
        assert isinstance(conn, AsyncConnection)
        return (await conn.execute(prepared.statement(conn.dialect.name), values)).rowcount  # type: ignore[call-overload]
    raw, dialect = driver
    compiled = prepared.compiled(dialect)
    params = compiled.parameters(values)
    try:
        if _is_inline(raw):
            return raw.execute(compiled.sql, params).rowcount
        status = await raw.execute(compiled.sql, *params)
    except Exception as exc:
        raise _translated(conn, exc, compiled.sql) from exc
    # asyncpg answers with the command tag: "INSERT 0 1", "UPDATE 1", ...
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else -1


async def execute_many(conn: Connection, prepared: Prepared, rows: list[dict[str, Any]]) -> None:
    if (driver := await _driver(conn)) is None:
        assert isinstance(conn, AsyncConnection)
        await conn.execute(prepared.statement(conn.dialect.name), rows)  # type: ignore[call-overload]
        return
    raw, dialect = driver
    compiled = prepared.compiled(dialect)
    params = [compiled.parameters(values) for values in rows]
    try:
        if _is_inline(raw):
            if len(params) == 1:
                raw.execute(compiled.sql, params[0])
            else:
                raw.executemany(compiled.sql, params)
        elif len(params) == 1:
            await raw.execute(compiled.sql, *params[0])
        else:
            await raw.executemany(compiled.sql, params)
    except Exception as exc:
        raise _translated(conn, exc, compiled.sql) from exc


def _translated(conn: Connection, exc: Exception, sql: str) -> Exception:
    """The error SQLAlchemy would have raised (IntegrityError, OperationalError, ...), so callers
    and the outage handling see the same exceptions whichever way a statement ran."""
    if isinstance(conn, Direct):
        return translated_error(conn.dialect, exc, sql)
    sync = conn.sync_connection
    assert sync is not None
    dbapi = sync.dialect.loaded_dbapi
    if not isinstance(exc, dbapi.Error):
        adapted: Any = sync.connection.dbapi_connection
        try:
            adapted._handle_exception(exc)
        except dbapi.Error as translated:
            exc = translated
        except Exception:
            return exc
    invalidated = sync.dialect.is_disconnect(exc, sync.connection.dbapi_connection, None)  # type: ignore[arg-type]
    error = sa_exc.DBAPIError.instance(sql, None, exc, dbapi.Error, connection_invalidated=invalidated)
    if invalidated:
        # As SQLAlchemy does: connections opened before this one are stale too.
        sync.engine.pool._invalidate(sync.connection, error)
        sync.invalidate(error)
    return error


def translated_error(dialect: Dialect, exc: Exception, sql: str) -> Exception:
    """A driver's error as SQLAlchemy raises it (asyncpg's own errors included)."""
    dbapi: Any = dialect.loaded_dbapi
    if not isinstance(exc, dbapi.Error) and dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

        try:
            AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, exc)
        except dbapi.Error as translated:
            exc = translated
        except Exception:
            return exc
    if not isinstance(exc, dbapi.Error):
        return exc
    return sa_exc.DBAPIError.instance(sql, None, exc, dbapi.Error)
