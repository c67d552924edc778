"""Rows of the engine's hot reads, in one call to the database driver.

Through SQLAlchemy's asyncio adapter a statement on SQLite is four trips to aiosqlite's thread
(a cursor, the execute, the fetch, the close), each a wake-up of that thread and of the event
loop; `fetch_all` makes it one (`execute_fetchall`), with the statement compiled once. On
PostgreSQL, SQLAlchemy already makes one round trip with a prepared statement, and is used.

The statements read here take plain strings as parameters and return plain values (a JSON
column is selected as text): no type processing is skipped on SQLite. What SQLite's driver runs
this way is not seen by SQLAlchemy's events or its statement log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, String, bindparam, exc, func, literal_column, select
from sqlalchemy import cast as cast_to
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler

Statement = Select[*tuple[Any, ...]]

_compiled: dict[tuple[int, str], tuple[Statement, SQLCompiler]] = {}


async def fetch_all(
    session: AsyncSession, statement: Statement, params: Mapping[str, str]
) -> Sequence[tuple[Any, ...]]:
    """Every row of a statement built once, inside the session's transaction (flushed first,
    as `session.execute` would)."""
    await session.flush()
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        return (await connection.execute(statement, params)).all()
    compiled = _compile(statement, connection.dialect)
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None, "a connection of the pool is always open"
    values = [params[name] for name in compiled.positiontup or []]
    try:
        rows = await driver.execute_fetchall(compiled.string, values)
    except sqlite3.Error as error:  # as SQLAlchemy raises it: a locked database is unavailable
        raise exc.DBAPIError.instance(compiled.string, values, error, sqlite3.Error) from error
    return cast(Sequence[tuple[Any, ...]], rows)


def _compile(statement: Statement, dialect: Dialect) -> SQLCompiler:
    key = (id(statement), dialect.name)
    if key not in _compiled:  # the statement is kept beside it: its id stays its own
        _compiled[key] = (statement, cast(SQLCompiler, statement.compile(dialect=dialect)))
    return _compiled[key][1]


def key_rows(dialect: str, name: str = "keys") -> Statement:
    """The keys of a JSON array bound as one parameter, a row each: any number of keys in one
    statement, which SQLite and PostgreSQL cache as one (`keys_param` builds the value)."""
    keys = bindparam(name, type_=String)
    if dialect == "sqlite":
        return select(literal_column("value")).select_from(func.json_each(keys))
    return select(func.json_array_elements_text(cast_to(keys, JSON)))


def keys_param(keys: Collection[str]) -> str:
    return json.dumps(sorted(keys))
