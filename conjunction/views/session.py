"""A session for one answer of the read side."""

from __future__ import annotations

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState


def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncSession:
    """A session for one answer. Each query sees what was committed by then, so a row loaded
    again by a later query must show its current values, not those of its first load (a run
    that was still going then and has a result now)."""
    session = sessions()
    orm_event.listen(session.sync_session, "do_orm_execute", _current_rows)
    return session


def _current_rows(state: ORMExecuteState) -> None:
    if state.is_select:
        state.update_execution_options(populate_existing=True)
