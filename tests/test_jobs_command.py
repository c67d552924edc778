"""`python app.py jobs list|retry|purge`, and the retention the server applies on its own.

Every test runs on SQLite and, when CONJUNCTION_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction import app
from conjunction.adapters import Adapters
from conjunction.app import create_app, main
from conjunction.config.settings import Settings
from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.models import Bisect, Delivery, Job, utcnow

Sessions = async_sessionmaker[AsyncSession]
DAY = timedelta(days=1)


@pytest.fixture
async def sessions(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> AsyncIterator[Sessions]:
    """The database the commands are pointed at, through the environment as an operator would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONJUNCTION_DATABASE_URL", database_url)
    engine = create_engine(database_url)
    await migrate(engine)
    yield sessionmaker(engine)
    await engine.dispose()


async def run(*argv: str) -> int:
    """`python app.py ARGV`: the command runs its own event loop, so it gets a thread."""
    return await asyncio.to_thread(main, list(argv))


async def add_job(sessions: Sessions, kind: str, state: str, age: timedelta, **values: Any) -> int:
    """A job in `state` that was created (and, when done or dead, finished) `age` ago."""
    at = utcnow() - age
    finished = at if state in {"done", "dead"} else None
    job = Job(kind=kind, payload={}, state=state, created_at=at, finished_at=finished, **values)
    async with sessions.begin() as session:
        session.add(job)
    return job.id


async def add_delivery(sessions: Sessions, name: str, age: timedelta) -> int:
    delivery = Delivery(
        forge="github",
        delivery_id=name,
        event="push",
        headers={},
        body="{}",
        received_at=utcnow() - age,
    )
    async with sessions.begin() as session:
        session.add(delivery)
    return delivery.id


async def add_delivery_job(sessions: Sessions, delivery: int, state: str, age: timedelta) -> int:
    job_id = await add_job(sessions, "github_delivery", state, age)
    async with sessions.begin() as session:
        job = await session.get_one(Job, job_id)
        job.payload = {"delivery": delivery}
    return job_id


async def jobs_left(sessions: Sessions) -> list[tuple[int, str, int]]:
    async with sessions() as session:
        jobs = await session.scalars(select(Job).order_by(Job.id))
        return [(job.id, job.state, job.attempts) for job in jobs]


async def deliveries_left(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        return list(await session.scalars(select(Delivery.delivery_id).order_by(Delivery.id)))


def test_jobs_help_names_the_three_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["jobs", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert "usage: app.py jobs [-h] {list,retry,purge} ..." in help_text
    for command in ("list", "retry", "purge"):
        assert f"\n    {command} " in help_text


async def test_list_shows_the_culprit_searches_in_progress(
    sessions: Sessions, capsys: pytest.CaptureFixture[str]
) -> None:
    await add_job(sessions, "trigger", "queued", DAY)
    async with sessions.begin() as session:
        session.add(
            Bisect(
                upstream="github.com/acme/lib",
                downstream="github.com/acme/app",
                running="github.com/acme/lib -> github.com/acme/app",
                failure_id="f" * 32,
                base_sha="a" * 40,
                head_sha="b" * 40,
                commits=[{"sha": f"{n}" * 40} for n in range(1, 9)],
                steps=[
                    {"event": "1" * 32, "sha": "4" * 40, "result": "success"},
                    {"event": "2" * 32, "sha": "6" * 40, "result": None},
                ],
                current_id="2" * 32,
                max_runs=10,
                requested_by="alice",
            )
        )
    assert await run("jobs", "list") == 0
    out = capsys.readouterr().out
    assert out.startswith("state   kind     jobs\nqueued  trigger  1\n")
    table = out.split("\nculprit searches in progress:\n")[1].splitlines()
    assert [line.split("  ")[0] for line in table] == ["id", "1"]
    assert table[1].split() == [
        "1",
        "github.com/acme/lib",
        "->",
        "github.com/acme/app",
        "8",
        "1",
        "of",
        "at",
        "most",
        "10",
        "6666666",
        "alice",
    ]


async def test_list_counts_jobs_and_shows_each_dead_one_with_its_error(
    sessions: Sessions, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("jobs", "list") == 0
    assert capsys.readouterr().out == "no jobs\n"

    for _ in range(2):
        await add_job(sessions, "report", "done", DAY)
    await add_job(sessions, "trigger", "queued", DAY)
    dead = await add_job(
        sessions,
        "github_delivery",
        "dead",
        DAY,
        attempts=1,
        last_error="KeyError: 'installation'\n(more lines of detail)",
    )
    timed_out = await add_job(
        sessions, "trigger", "dead", DAY, attempts=8, last_error="TimeoutError"
    )

    assert await run("jobs", "list") == 0
    assert capsys.readouterr().out == (
        "state   kind             jobs\n"
        "dead    github_delivery  1\n"
        "dead    trigger          1\n"
        "done    report           2\n"
        "queued  trigger          1\n"
        "\n"
        "dead jobs:\n"
        "id  kind             attempts  last error\n"
        f"{dead}   github_delivery  1         KeyError: 'installation'\n"
        f"{timed_out}   trigger          8         TimeoutError\n"
    )


async def test_retry_queues_dead_jobs_again_by_id_or_all(
    sessions: Sessions, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await add_job(sessions, "trigger", "dead", DAY, attempts=8, last_error="boom")
    second = await add_job(sessions, "report", "dead", DAY, attempts=1, last_error="KeyError")
    done = await add_job(sessions, "report", "done", DAY, attempts=1)

    assert await run("jobs", "retry", str(first), str(done), "999") == 1
    output = capsys.readouterr()
    assert output.out == f"queued 1 job(s) again: {first}\n"
    assert output.err == f"conjunction: not a dead job: {done} 999\n"
    assert await jobs_left(sessions) == [
        (first, "queued", 0),
        (second, "dead", 1),
        (done, "done", 1),
    ]

    assert await run("jobs", "retry", "--all-dead") == 0
    assert capsys.readouterr().out == f"queued 1 job(s) again: {second}\n"
    async with sessions() as session:
        job = await session.get_one(Job, second)
    assert (job.state, job.attempts, job.finished_at, job.locked_until) == ("queued", 0, None, None)
    assert job.run_at <= utcnow()

    assert await run("jobs", "retry") == 2
    assert capsys.readouterr().err == "conjunction: jobs retry takes job ids or --all-dead\n"


async def test_purge_deletes_finished_jobs_and_deliveries_older_than_asked(
    sessions: Sessions, capsys: pytest.CaptureFixture[str]
) -> None:
    old, recent = 15 * DAY, 13 * DAY
    await add_job(sessions, "report", "done", old)
    await add_job(sessions, "trigger", "dead", old)
    kept = [
        await add_job(sessions, "report", "done", recent),
        await add_job(sessions, "trigger", "dead", recent),
        await add_job(sessions, "trigger", "queued", old),
    ]
    await add_delivery(sessions, "old", old)
    await add_delivery(sessions, "recent", recent)
    waiting = await add_delivery(sessions, "old, its job still waiting", old)
    kept.append(await add_delivery_job(sessions, waiting, "queued", old))
    processed = await add_delivery(sessions, "old, processed", old)
    await add_delivery_job(sessions, processed, "done", old)

    assert await run("jobs", "purge", "--older-than", "14d") == 0
    assert capsys.readouterr().out == "deleted 3 finished job(s) and 2 delivery(ies)\n"
    assert [job_id for job_id, _, _ in await jobs_left(sessions)] == kept
    assert await deliveries_left(sessions) == ["recent", "old, its job still waiting"]


async def test_purge_keeps_what_the_retention_setting_keeps(
    sessions: Sessions, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_job(sessions, "report", "done", 3 * DAY)
    await add_delivery(sessions, "three days old", 3 * DAY)

    assert await run("jobs", "purge") == 0, "the default, CONJUNCTION_RETENTION=14d"
    assert capsys.readouterr().out == "deleted 0 finished job(s) and 0 delivery(ies)\n"

    monkeypatch.setenv("CONJUNCTION_RETENTION", "2d")
    assert await run("jobs", "purge") == 0
    assert capsys.readouterr().out == "deleted 1 finished job(s) and 1 delivery(ies)\n"
    assert await jobs_left(sessions) == [] and await deliveries_left(sessions) == []


def test_purge_refuses_a_duration_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["jobs", "purge", "--older-than", "two weeks"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: argument --older-than: expected a duration like 90s, 30m, 6h or 1d,"
        " got 'two weeks'\n"
    )


async def test_server_applies_retention_to_done_jobs_and_deliveries(
    aiohttp_client: Any,
    settings: Settings,
    database_url: str,
    sessions: Sessions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dead jobs wait for an operator; done jobs and unneeded deliveries go after the retention."""
    old, recent = 15 * DAY, 13 * DAY
    await add_job(sessions, "report", "done", old)
    kept = [
        await add_job(sessions, "report", "done", recent),
        await add_job(sessions, "trigger", "dead", old),
    ]
    await add_delivery(sessions, "old", old)
    await add_delivery(sessions, "recent", recent)
    failed = await add_delivery(sessions, "old, its job dead", old)
    kept.append(await add_delivery_job(sessions, failed, "dead", old))
    monkeypatch.setattr(app, "SWEEP_INTERVAL", 0.01)

    settings = settings.model_copy(update={"database_url": database_url, "retention": 14 * 86400})
    await aiohttp_client(create_app(settings, adapters=Adapters()))
    for _ in range(500):  # deliveries go after jobs
        if "old" not in await deliveries_left(sessions):
            break
        await asyncio.sleep(0.01)

    assert [job_id for job_id, _, _ in await jobs_left(sessions)] == kept
    assert await deliveries_left(sessions) == ["recent", "old, its job dead"]
