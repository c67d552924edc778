"""The SQL statements a piece of code runs, to check how many round trips it costs.

with statements(session) as executed:
    await something(session)
assert len(executed) == 1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy.event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


@contextmanager
def statements(through: AsyncSession | AsyncEngine) -> Iterator[list[str]]:
    """Every statement run meanwhile through this session's or engine's database."""
    bind = through.bind if isinstance(through, AsyncSession) else through
    assert isinstance(bind, AsyncEngine)
    engine = bind.sync_engine
    executed: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)
