"""A pair's history read for many runs in one statement: the upstream commit each last passed
with, and the durations of its latest runs, as the rows of a report need them.

Every test runs on SQLite and, when CONJUNCTION_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.history import last_passed, last_passed_with, past_durations
from conjunction.models import Event
from conjunction.results import Result, Verdict
from conjunction.runs import Step
from testkit.statements import statements

Sessions = async_sessionmaker[AsyncSession]
LIB, APP = "github.com/a/lib", "github.com/a/app"
OTHER, GONE = "github.com/a/other", "github.com/a/gone"
START = datetime(2026, 1, 1, 12, 0)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        yield sessionmaker(engine)
    finally:
        await engine.dispose()


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def build(event_id: str, sha: str, minute: int) -> Event:
    return Event(
        id=event_id, kind="build", project=LIB, root_id=event_id, sha=sha, created_at=at(minute)
    )


def run(event_id: str, project: str, parent: str, minute: int, **kw: Any) -> Event:
    """A downstream run of LIB, created at `minute`."""
    return Event(
        id=event_id,
        kind="trigger",
        project=project,
        upstream=LIB,
        parent_id=parent,
        root_id=parent,
        step=kw.pop("step", Step.FIRST),
        created_at=at(minute),
        **kw,
    )


async def stored(sessions: Sessions, *events: Event) -> list[Event]:
    async with sessions.begin() as session:
        session.add_all(events)
    return list(events)


async def test_the_commit_each_pair_last_passed_with(sessions: Sessions) -> None:
    events = await stored(
        sessions,
        *(build(f"b{n}", str(n) * 40, 10 * n) for n in range(1, 6)),
        run("a1", APP, "b1", 11, result=Result.SUCCESS),
        run("a2", APP, "b2", 21, result=Result.FAILURE, change=Verdict.FLAKY),
        run("a3", APP, "b3", 31, result=Result.FAILURE),
        # neither a pre-merge run nor a confirming re-run is part of the pair's history
        run("pre", APP, "b3", 32, result=Result.SUCCESS, change_number=7),
        run("again", APP, "b3", 33, result=Result.SUCCESS, step=Step.AGAIN, confirms_id="a3"),
        run("a4", APP, "b4", 41),
        run("a5", APP, "b5", 51, result=Result.SUCCESS),  # after a4: not its history
        run("o4", OTHER, "b4", 41, result=Result.FAILURE),  # never passed
        run("g1", GONE, "missing", 11, result=Result.SUCCESS),  # its upstream build is gone
        run("g4", GONE, "b4", 41),
    )
    rows = [e for e in events if e.id in {"a3", "a4", "a5", "o4", "g4"}]

    async with sessions() as session:
        with statements(session) as executed:
            found = await last_passed_with(session, rows)
        one_by_one = {}
        for row in rows:
            passed = await last_passed(session, row)
            parent = await session.get(Event, passed.parent_id or "") if passed else None
            if parent is not None and parent.sha:
                one_by_one[row.id] = parent.sha

    assert found == {"a3": "2" * 40, "a4": "2" * 40, "a5": "2" * 40}
    assert found == one_by_one
    assert len(executed) == 1


async def test_the_durations_of_each_pairs_latest_runs(sessions: Sessions) -> None:
    minutes = range(1, 13)
    await stored(
        sessions,
        build("b", "1" * 40, 0),
        # APP's runs took 1, 2, … 12 minutes, one an hour
        *(
            run(f"a{n}", APP, "b", 60 * n, result=Result.SUCCESS, started_at=at(60 * n))
            for n in minutes
        ),
        run("skipped", APP, "b", 60 * 12 + 30, result=Result.SKIPPED, started_at=at(750)),
        run("unstarted", APP, "b", 60 * 12 + 40, result=Result.FAILURE),
        run("cancelled", OTHER, "b", 10, result=Result.CANCELLED, started_at=at(10)),
    )
    async with sessions.begin() as session:
        for n in minutes:
            event = await session.get(Event, f"a{n}")
            assert event is not None
            event.finished_at = at(60 * n + n)
        cancelled = await session.get(Event, "cancelled")
        assert cancelled is not None
        cancelled.finished_at = at(20)
    rows = await stored(
        sessions,
        run("now", APP, "b", 60 * 13, started_at=at(60 * 13)),
        run("then", APP, "b", 60 * 4 + 30, started_at=at(60 * 4 + 30)),  # after a4
        run("other", OTHER, "b", 60 * 13, started_at=at(60 * 13)),  # no decisive run
    )

    async with sessions() as session:
        with statements(session) as executed:
            found = await past_durations(session, rows, 10)

    assert found == {
        "now": [60.0 * n for n in range(12, 2, -1)],  # the latest ten, newest first
        "then": [60.0 * n for n in (4, 3, 2, 1)],
    }
    assert len(executed) == 1
