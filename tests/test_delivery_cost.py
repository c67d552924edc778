"""What a delivery that starts nothing costs the database: its statements and transactions,
counted, so that the path of the most common delivery cannot silently grow back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiosqlite
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event, select, update

from conjunction.models import Event, Job
from testkit.payloads import workflow_run
from tests.conftest import post_github, runtime

LIB = "github.com/acme/lib"
APP = "github.com/acme/app"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


@contextmanager
def counted(client: TestClient[Any, Any]) -> Iterator[dict[str, list[str]]]:
    """The SQL statements and transactions begun on the app's database meanwhile: those run
    through SQLAlchemy, and the hot reads `conjunction.engine.rows` hands to SQLite's driver in
    one call."""
    seen: dict[str, list[str]] = {"statements": [], "transactions": []}
    database = runtime(client).database.sync_engine

    def statement(*args: Any) -> None:
        seen["statements"].append(args[2])

    fetch_all = aiosqlite.Connection.execute_fetchall

    async def fetched(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        seen["statements"].append(sql)
        return await fetch_all(self, sql, *args)

    def begin(connection: Any) -> None:
        seen["transactions"].append("BEGIN")

    event.listen(database, "before_cursor_execute", statement)
    event.listen(database, "begin", begin)
    setattr(aiosqlite.Connection, "execute_fetchall", fetched)  # noqa: B010
    try:
        yield seen
    finally:
        setattr(aiosqlite.Connection, "execute_fetchall", fetch_all)  # noqa: B010
        event.remove(database, "before_cursor_execute", statement)
        event.remove(database, "begin", begin)


async def run_the_delivery(client: TestClient[Any, Any], payload: dict[str, Any]) -> None:
    answer = await post_github(client, "workflow_run", payload, "delivery-1")
    assert answer.status == 202


async def test_a_success_no_one_subscribes_to_costs_a_few_statements_and_records_its_build(
    client: TestClient[Any, Any],
) -> None:
    await run_the_delivery(client, workflow_run("acme/lib", SHA))

    with counted(client) as seen:
        assert await runtime(client).worker.run_once()

    # the job's claim (3: the due jobs, the lapsed ones, the update) and its completion (1);
    # the delivery read (1); whether the project has downstreams (1); the branch or tag it ran
    # on (1); the triggers it may answer, its subscribers, older triggers to supersede, and its
    # build inserted, in one transaction (4)
    assert len(seen["statements"]) == 11, "\n".join(seen["statements"])
    # the claim; the delivery; downstreams; the ref; the match and the build; the completion
    assert len(seen["transactions"]) == 6
    async with runtime(client).sessions() as session:
        builds = list(await session.scalars(select(Event).where(Event.kind == "build")))
        jobs = list(await session.scalars(select(Job.state)))
    assert [(b.project, b.sha, b.ref, b.ref_type, b.via, b.result) for b in builds] == [
        (LIB, SHA, "main", "branch", "forge", "success")
    ]
    assert jobs == ["done"]


@pytest.mark.parametrize("conclusion", ["failure", "cancelled"])
async def test_a_run_that_answers_no_trigger_and_is_no_success_costs_fewer(
    client: TestClient[Any, Any], conclusion: str
) -> None:
    await runtime(client).engine.index_project(
        APP, private=False, default_branch="main", config_text=f"upstreams:\n  - project: {LIB}\n"
    )
    await run_the_delivery(client, workflow_run("acme/lib", SHA, conclusion=conclusion))

    with counted(client) as seen:
        assert await runtime(client).worker.run_once()

    # the claim (3), the completion (1), the delivery (1), downstreams (1), the ref (1), and the
    # triggers it may answer (1): nothing is written
    assert len(seen["statements"]) == 8, "\n".join(seen["statements"])
    async with runtime(client).sessions() as session:
        assert list(await session.scalars(select(Event))) == []


async def test_a_delivery_job_run_again_records_its_build_once(
    client: TestClient[Any, Any],
) -> None:
    """The job recorded the build, then lost the database's answer to its commit and ran
    again: one build. Another attempt of the run (re-run in GitHub) is a build of its own."""
    await run_the_delivery(client, workflow_run("acme/lib", SHA))
    assert await runtime(client).worker.run_once()
    async with runtime(client).sessions.begin() as session:
        await session.execute(update(Job).values(state="queued", locked_by=None))
    assert await runtime(client).worker.run_once()
    again = workflow_run("acme/lib", SHA)
    again["workflow_run"]["run_attempt"] = 2
    assert (await post_github(client, "workflow_run", again, "delivery-2")).status == 202
    assert await runtime(client).worker.run_once()

    async with runtime(client).sessions() as session:
        builds = list(await session.scalars(select(Event).where(Event.kind == "build")))
    assert [(b.project, b.sha) for b in builds] == [(LIB, SHA), (LIB, SHA)]
    assert len({b.id for b in builds}) == 2
