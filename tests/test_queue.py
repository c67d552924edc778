"""The durable job queue: retries with backoff, dead letters, dedupe, restarts, several workers,
deterministic errors, lease heartbeats, graceful shutdown.

Every test runs on SQLite and, when CONJUNCTION_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import http
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import gidgethub
import pydantic
import pytest
import sqlalchemy.event
import sqlalchemy.exc
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import conjunction.queue
from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.models import Job, WorkerBeat, utcnow
from conjunction.queue import JobQueue, PermanentError, RetryLater, Worker, backoff

Sessions = async_sessionmaker[AsyncSession]


@asynccontextmanager
async def database(url: str) -> AsyncIterator[Sessions]:
    """One engine on the test database: what a single server process would open."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        yield sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    async with database(database_url) as opened:
        yield opened


async def enqueue(sessions: Sessions, kind: str, payload: dict[str, Any], **kw: Any) -> None:
    async with sessions.begin() as session:
        await JobQueue.enqueue(session, kind, payload, **kw)


async def all_jobs(sessions: Sessions) -> list[Job]:
    async with sessions() as session:
        return list(await session.scalars(select(Job).order_by(Job.id)))


async def only_job(sessions: Sessions) -> Job:
    jobs = await all_jobs(sessions)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def make_due(sessions: Sessions) -> None:
    """Bring every waiting job's retry time forward to now, instead of waiting for it."""
    async with sessions.begin() as session:
        await session.execute(update(Job).where(Job.state == "queued").values(run_at=utcnow()))


class Flaky:
    """A handler that fails `failures` times, then succeeds; it records every payload it sees."""

    def __init__(self, failures: int = 0, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, payload: dict[str, Any]) -> None:
        self.calls.append(payload)
        if len(self.calls) <= self.failures:
            raise self.error(f"flaky failure {len(self.calls)}")


# -- backoff ------------------------------------------------------------------------------


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    base, cap = 2.0, 60.0
    for attempts in range(1, 12):
        ceiling = min(cap, base * 2 ** (attempts - 1))
        draws = [backoff(attempts, base, cap) for _ in range(500)]
        assert all(base / 2 <= draw <= ceiling for draw in draws), (
            attempts,
            min(draws),
            max(draws),
        )
        assert len(set(draws)) > 1, "no jitter: every draw is the same"
        # The spread reaches the top of the window: the delay really grows with each attempt.
        assert max(draws) > base / 2 + (ceiling - base / 2) * 0.8
    assert max(backoff(30, base, cap) for _ in range(500)) > cap * 0.9


def test_backoff_survives_absurd_attempt_counts() -> None:
    assert 1.0 <= backoff(5000, 2.0, 60.0) <= 60.0
    assert backoff(3, 10.0, 1.0) <= 1.0, "the cap wins over the lower bound"


# -- retries and dead letters -------------------------------------------------------------


async def test_failing_job_is_retried_with_growing_delay_until_it_succeeds(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[tuple[int, float]] = []

    def no_jitter(attempts: int, base: float, cap: float) -> float:
        delay = min(cap, base * 2 ** (attempts - 1))  # the top of the jitter window
        delays.append((attempts, delay))
        return delay

    monkeypatch.setattr(conjunction.queue, "backoff", no_jitter)
    handler = Flaky(failures=2)
    worker = Worker(JobQueue(sessions, base_delay=10, max_delay=3600), {"flaky": handler}, "w1")
    await enqueue(sessions, "flaky", {"n": 1})

    for attempt in (1, 2):
        failed_at = utcnow()
        assert await worker.run_until_idle() == 1
        job = await only_job(sessions)
        assert (job.state, job.attempts) == ("queued", attempt)
        assert job.last_error == f"RuntimeError: flaky failure {attempt}"
        expected = 10 * 2 ** (attempt - 1)
        assert delays[-1] == (attempt, expected)
        waits = (job.run_at - failed_at).total_seconds()
        assert expected <= waits < expected + 5, waits
        assert await worker.run_until_idle() == 0, "retried before its backoff ran out"
        await make_due(sessions)

    assert await worker.run_until_idle() == 1
    job = await only_job(sessions)
    assert (job.state, job.attempts, job.last_error) == ("done", 3, None)
    assert job.finished_at is not None and job.locked_until is None
    assert handler.calls == [{"n": 1}] * 3
    assert [d for _, d in delays] == [10, 20]


async def test_job_that_keeps_failing_ends_in_the_dead_letters(sessions: Sessions) -> None:
    handler = Flaky(failures=100)
    worker = Worker(JobQueue(sessions, max_attempts=4, base_delay=0), {"flaky": handler}, "w1")
    await enqueue(sessions, "flaky", {})

    assert await worker.run_until_idle() == 4
    job = await only_job(sessions)
    assert (job.state, job.attempts) == ("dead", 4)
    assert job.last_error == "RuntimeError: flaky failure 4"
    assert job.finished_at is not None
    assert await worker.run_until_idle() == 0, "a dead job is never taken again"
    assert len(handler.calls) == 4


async def test_permanent_error_goes_to_the_dead_letters_at_once(sessions: Sessions) -> None:
    handler = Flaky(failures=1, error=PermanentError)
    worker = Worker(JobQueue(sessions, max_attempts=8, base_delay=0), {"doomed": handler}, "w1")
    await enqueue(sessions, "doomed", {})

    assert await worker.run_until_idle() == 1
    job = await only_job(sessions)
    assert (job.state, job.attempts) == ("dead", 1)
    assert job.last_error == "conjunction.queue.PermanentError: flaky failure 1"


async def test_job_kind_without_handler_goes_dead_with_a_clear_error(sessions: Sessions) -> None:
    worker = Worker(JobQueue(sessions, base_delay=0), {"known": Flaky()}, "w1")
    await enqueue(sessions, "mystery", {})

    assert await worker.run_until_idle() == 1
    job = await only_job(sessions)
    assert (job.state, job.attempts) == ("dead", 1)
    assert job.last_error is not None
    assert "no handler for job kind 'mystery'" in job.last_error


async def test_retry_later_postpones_without_counting_an_attempt(sessions: Sessions) -> None:
    answers: list[Exception | None] = [RetryLater(60, "rate limited until the hour")]

    async def limited(payload: dict[str, Any]) -> None:
        answer = answers.pop(0) if answers else None
        if answer is not None:
            raise answer

    worker = Worker(JobQueue(sessions, max_attempts=2), {"limited": limited}, "w1")
    await enqueue(sessions, "limited", {})

    postponed_at = utcnow()
    assert await worker.run_until_idle() == 1
    job = await only_job(sessions)
    assert (job.state, job.attempts) == ("queued", 0)
    assert job.last_error == "rate limited until the hour"
    assert 60 <= (job.run_at - postponed_at).total_seconds() < 65
    assert await worker.run_until_idle() == 0, "ran again before the requested delay"

    # Postponing more often than max_attempts allows failures must not kill the job.
    answers.extend(RetryLater(0) for _ in range(5))
    for _ in range(6):
        await make_due(sessions)
        await worker.run_until_idle(limit=1)
    job = await only_job(sessions)
    assert (job.state, job.attempts, job.last_error) == ("done", 1, None)


# -- dedupe -------------------------------------------------------------------------------


async def test_dedupe_key_merges_waiting_jobs_only(sessions: Sessions) -> None:
    queue = JobQueue(sessions)
    worker = Worker(queue, {"report": Flaky()}, "w1")
    await enqueue(sessions, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    await enqueue(sessions, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    async with sessions.begin() as session:  # twice in one transaction too
        await JobQueue.enqueue(session, "report", {"event_id": "e1"}, dedupe_key="report:e1")
        await JobQueue.enqueue(session, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    await enqueue(sessions, "report", {"event_id": "e2"}, dedupe_key="report:e2")
    assert [(j.dedupe_key, j.state) for j in await all_jobs(sessions)] == [
        ("report:e1", "queued"),
        ("report:e2", "queued"),
    ]

    assert await worker.run_until_idle() == 2
    await enqueue(sessions, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    assert [(j.dedupe_key, j.state) for j in await all_jobs(sessions)] == [
        ("report:e1", "done"),
        ("report:e2", "done"),
        ("report:e1", "queued"),
    ]

    # A running job may already have read the state this request is about: keep the request.
    running = await queue.claim("w1")
    assert running is not None and running.state == "running"
    await enqueue(sessions, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    states = [j.state for j in await all_jobs(sessions) if j.dedupe_key == "report:e1"]
    assert states == ["done", "running", "queued"]


async def test_runs_of_a_key_with_an_interval_are_spaced_the_first_at_once(
    sessions: Sessions,
) -> None:
    worker = Worker(JobQueue(sessions), {"report": Flaky()}, "w1")
    spaced = {"dedupe_key": "report:e1", "interval": 60.0}
    await enqueue(sessions, "report", {"event_id": "e1"}, **spaced)
    assert await worker.run_until_idle() == 1  # the first of a burst runs at once

    await enqueue(sessions, "report", {"event_id": "e1"}, **spaced)
    await enqueue(sessions, "report", {"event_id": "e1"}, **spaced)  # absorbed by the waiting one
    assert await worker.run_until_idle() == 0  # not due: a minute after the first run
    first, second = await all_jobs(sessions)
    assert second.state == "queued"
    assert (second.run_at - first.run_at).total_seconds() == pytest.approx(60.0, abs=1)

    # another key runs at once
    await enqueue(sessions, "report", {"event_id": "e2"}, dedupe_key="report:e2", interval=60.0)
    assert await worker.run_until_idle() == 1


async def test_work_of_one_key_runs_once_at_a_time(sessions: Sessions) -> None:
    queue = JobQueue(sessions)
    await enqueue(sessions, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    first = await queue.claim("w1")
    assert first is not None
    await enqueue(sessions, "report", {"event_id": "e1"}, dedupe_key="report:e1")
    await enqueue(sessions, "report", {"event_id": "e2"}, dedupe_key="report:e2")

    # the second report on e1 waits for the first to finish; another commit's does not
    second = await queue.claim("w2")
    assert second is not None and second.payload == {"event_id": "e2"}
    assert await queue.claim("w2") is None
    await queue.complete(first)
    third = await queue.claim("w2")
    assert third is not None and third.payload == {"event_id": "e1"}


# -- restarts and crashed workers -----------------------------------------------------------


async def test_jobs_survive_a_restart(database_url: str) -> None:
    async with database(database_url) as first_process:
        for n in range(10):
            await enqueue(first_process, "work", {"n": n})
    # The first process is gone (its engine disposed) before it ran anything.

    handler = Flaky()
    async with database(database_url) as second_process:
        worker = Worker(JobQueue(second_process), {"work": handler}, "after-restart")
        assert await worker.run_until_idle() == 10
        assert {job.state for job in await all_jobs(second_process)} == {"done"}
    assert sorted(call["n"] for call in handler.calls) == list(range(10))


async def test_job_of_a_dead_worker_is_taken_again_once_its_lease_runs_out(
    database_url: str,
) -> None:
    async with database(database_url) as crashed, database(database_url) as survivor:
        await enqueue(crashed, "work", {"n": 1})
        taken = await JobQueue(crashed, lease=60).claim("crashed-worker")
        assert taken is not None
        # The crashed worker never completes the job.

        handler = Flaky()
        worker = Worker(JobQueue(survivor, lease=60), {"work": handler}, "survivor")
        assert await worker.run_until_idle() == 0, "taken while its lease still held"
        async with survivor.begin() as session:  # the lease runs out
            await session.execute(update(Job).values(locked_until=utcnow()))
        assert await worker.run_until_idle() == 1
        assert handler.calls == [{"n": 1}]
        job = await only_job(survivor)
        assert (job.state, job.attempts, job.locked_by) == ("done", 2, "survivor")


async def test_jobs_of_a_worker_silent_past_its_timeout_are_taken_before_the_lease_ends(
    database_url: str,
) -> None:
    """A killed process stops saying it is alive: a restarted one takes its jobs within
    WORKER_TIMEOUT, long before their leases end; a living worker's jobs stay its own."""
    async with database(database_url) as crashed, database(database_url) as restarted:
        await enqueue(crashed, "work", {"n": 1})
        await enqueue(crashed, "work", {"n": 2})
        dead, living = JobQueue(crashed, lease=600), JobQueue(restarted, lease=600)
        assert await dead.claim("killed") is not None
        assert await living.claim("alive") is not None
        await dead.beat("killed")
        await living.beat("alive")

        handler = Flaky()
        worker = Worker(JobQueue(restarted, lease=600), {"work": handler}, "restarted")
        assert await worker.run_until_idle() == 0, "taken while its worker was alive"
        silent = utcnow() - timedelta(seconds=conjunction.queue.WORKER_TIMEOUT + 1)
        async with crashed.begin() as session:
            await session.execute(
                update(WorkerBeat).where(WorkerBeat.id == "killed").values(seen_at=silent)
            )
        assert await worker.run_until_idle() == 1
        assert handler.calls == [{"n": 1}]
        jobs = {job.payload["n"]: job for job in await all_jobs(restarted)}
        assert (jobs[1].state, jobs[1].locked_by) == ("done", "restarted")
        assert (jobs[2].state, jobs[2].locked_by) == ("running", "alive")


async def test_a_stopped_worker_forgets_its_heartbeat(sessions: Sessions) -> None:
    worker = Worker(JobQueue(sessions), {}, "short-lived", poll_interval=0.01)
    running = asyncio.create_task(worker.run_forever())
    for _ in range(100):
        async with sessions() as session:
            if await session.get(WorkerBeat, "short-lived") is not None:
                break
        await asyncio.sleep(0.01)
    await worker.shutdown(running, grace=1)
    async with sessions() as session:
        assert await session.get(WorkerBeat, "short-lived") is None


async def test_late_answer_from_a_worker_that_lost_its_lease_is_ignored(
    database_url: str,
) -> None:
    async with database(database_url) as old, database(database_url) as new:
        await enqueue(old, "work", {})
        old_queue, new_queue = JobQueue(old, lease=0.1), JobQueue(new, lease=60)
        stale = await old_queue.claim("host:1")
        assert stale is not None
        await asyncio.sleep(0.15)
        current = await new_queue.claim("host:2")  # a restarted process: a new worker id
        assert current is not None and current.attempts == 2

        await old_queue.fail(stale, "TimeoutError: too slow")
        await old_queue.complete(stale)
        await old_queue.postpone(stale, 60, "later")
        job = await only_job(new)
        assert (job.state, job.attempts, job.last_error) == ("running", 2, None)

        await new_queue.complete(current)
        assert (await only_job(new)).state == "done"


async def test_a_worker_never_takes_back_a_job_of_its_own(database_url: str) -> None:
    """Its lease ran out while the worker could not reach the database to extend it: the worker
    is still running it, or saving its outcome, so running it again would do its work twice.
    Another worker takes it."""
    async with database(database_url) as sessions:
        await enqueue(sessions, "work", {})
        queue = JobQueue(sessions, lease=0.1)
        running = await queue.claim("host:1:a")
        assert running is not None
        await asyncio.sleep(0.15)
        assert await queue.claim("host:1:a") is None
        taken = await queue.claim("host:2:b")
        assert taken is not None and taken.attempts == 2


# -- several workers ----------------------------------------------------------------------


async def test_two_workers_share_the_queue_without_running_a_job_twice(
    database_url: str,
) -> None:
    """Two processes (two engines) drain one queue concurrently: every job runs exactly once.

    On PostgreSQL the claim takes its row with SELECT ... FOR UPDATE SKIP LOCKED, so the
    workers pass each other by; SQLite has no row locks and relies on the claim's conditional
    UPDATE (state and attempts unchanged since the SELECT) to let only one worker win a job.
    """
    total = 200
    ran: list[int] = []
    ran_by: dict[str, int] = {"a": 0, "b": 0}

    def handler_for(name: str) -> Any:
        async def record(payload: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            ran.append(payload["n"])
            ran_by[name] += 1

        return record

    async with database(database_url) as process_a, database(database_url) as process_b:
        async with process_a.begin() as session:
            for n in range(total):
                await JobQueue.enqueue(session, "work", {"n": n})
        worker_a = Worker(JobQueue(process_a), {"work": handler_for("a")}, "a")
        worker_b = Worker(JobQueue(process_b), {"work": handler_for("b")}, "b")

        counts = await asyncio.gather(worker_a.run_until_idle(), worker_b.run_until_idle())

        assert sorted(ran) == list(range(total))
        assert sum(counts) == total
        assert ran_by["a"] > 0 and ran_by["b"] > 0, f"the workers did not overlap: {ran_by}"
        async with process_b() as session:
            rows = (
                await session.execute(
                    select(Job.state, Job.attempts, func.count()).group_by(Job.state, Job.attempts)
                )
            ).all()
        assert [tuple(row) for row in rows] == [("done", 1, total)]


async def test_claim_passes_by_a_job_another_worker_holds(database_url: str) -> None:
    """PostgreSQL only: a row locked by another transaction is skipped, not waited for."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no row locks; its claim is covered by the two-worker test")
    async with database(database_url) as holder, database(database_url) as claimer:
        for n in range(2):
            await enqueue(holder, "work", {"n": n})
        first, second = (job.id for job in await all_jobs(holder))
        async with holder.begin() as session:
            await session.execute(select(Job).where(Job.id == first).with_for_update())
            job = await asyncio.wait_for(JobQueue(claimer).claim("claimer"), timeout=2)
        assert job is not None and job.id == second


async def test_run_forever_picks_up_jobs_enqueued_later(sessions: Sessions) -> None:
    handler = Flaky()
    worker = Worker(JobQueue(sessions), {"work": handler}, "w1", poll_interval=0.02)
    task = asyncio.create_task(worker.run_forever())
    try:
        await asyncio.sleep(0.05)  # idle, polling an empty queue
        await enqueue(sessions, "work", {"n": 1})
        worker.wakeup.set()
        for _ in range(100):
            if (await only_job(sessions)).state == "done":
                break
            await asyncio.sleep(0.01)
        assert (await only_job(sessions)).state == "done"
        assert handler.calls == [{"n": 1}]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- deterministic errors -------------------------------------------------------------------


class Envelope(pydantic.BaseModel):
    installation: int


def read_mis_shaped(payload: dict[str, Any]) -> None:
    """What handlers do with a payload, each step failing as a payload of the wrong shape makes
    it fail."""
    step = payload["step"]
    if step == "key":
        payload["installation"]["id"]
    elif step == "type":
        payload["installation"]["id"] + 1
    elif step == "attribute":
        payload["installation"].get("id")
    elif step == "index":
        payload["pull_requests"][0]
    elif step == "value":
        int(payload["installation"])
    elif step == "json":
        json.loads(payload["body"])
    elif step == "pydantic":
        Envelope.model_validate(payload)


MIS_SHAPED: dict[str, dict[str, Any]] = {
    "KeyError: 'installation'": {"step": "key"},
    "TypeError: can only concatenate str": {"step": "type", "installation": {"id": "7"}},
    "AttributeError: 'str' object has no attribute 'get'": {
        "step": "attribute",
        "installation": "x",
    },
    "IndexError: list index out of range": {"step": "index", "pull_requests": []},
    "ValueError: invalid literal for int()": {"step": "value", "installation": "x"},
    "json.decoder.JSONDecodeError: Expecting property name": {"step": "json", "body": "{"},
    "pydantic_core._pydantic_core.ValidationError: 1 validation error for Envelope": {
        "step": "pydantic",
        "installation": "x",
    },
}

UNLUCKY = [
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    aiohttp.ClientOSError(111, "Connect call failed"),
    aiohttp.ServerDisconnectedError(),
    gidgethub.GitHubBroken(http.HTTPStatus.BAD_GATEWAY),
    sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked")),
    sqlalchemy.exc.InterfaceError("SELECT", {}, Exception("connection is closed")),
]


async def test_a_deterministic_error_is_dead_at_once_with_its_reason(sessions: Sessions) -> None:
    async def handler(payload: dict[str, Any]) -> None:
        read_mis_shaped(payload)

    worker = Worker(JobQueue(sessions, max_attempts=8, base_delay=0), {"event": handler}, "w1")
    for payload in MIS_SHAPED.values():
        await enqueue(sessions, "event", payload)

    assert await worker.run_until_idle() == len(MIS_SHAPED), "a job ran more than once"
    jobs = await all_jobs(sessions)
    assert [(job.state, job.attempts) for job in jobs] == [("dead", 1)] * len(MIS_SHAPED)
    for reason, job in zip(MIS_SHAPED, jobs, strict=True):
        assert job.last_error is not None and job.last_error.startswith(reason), job.last_error


async def test_network_and_database_errors_are_retried(sessions: Sessions) -> None:
    async def handler(payload: dict[str, Any]) -> None:
        raise UNLUCKY[payload["n"]]

    worker = Worker(JobQueue(sessions, max_attempts=8), {"call": handler}, "w1")
    for n in range(len(UNLUCKY)):
        await enqueue(sessions, "call", {"n": n})

    assert await worker.run_until_idle() == len(UNLUCKY)
    jobs = await all_jobs(sessions)
    assert [(job.state, job.attempts) for job in jobs] == [("queued", 1)] * len(UNLUCKY)
    for error, job in zip(UNLUCKY, jobs, strict=True):
        assert job.last_error is not None and type(error).__name__ in job.last_error


# -- lease heartbeat ------------------------------------------------------------------------


async def test_a_long_job_keeps_its_lease_while_it_runs(database_url: str) -> None:
    """The lease is short so a dead worker's job is taken again soon; a live worker's
    heartbeat keeps its job however long it runs."""
    lease = 0.6
    async with database(database_url) as running, database(database_url) as other:
        await enqueue(running, "long", {})
        started, finish = asyncio.Event(), asyncio.Event()
        handler = Flaky()

        async def long_job(payload: dict[str, Any]) -> None:
            started.set()
            await finish.wait()
            await handler(payload)

        worker = Worker(JobQueue(running, lease=lease), {"long": long_job}, "runner")
        task = asyncio.create_task(worker.run_once())
        await started.wait()
        first_lease_ends = (await only_job(other)).locked_until
        assert first_lease_ends is not None
        # Wait until well past the lease taken with the claim.
        await asyncio.sleep((first_lease_ends - utcnow()).total_seconds() + lease / 2)

        assert await JobQueue(other, lease=lease).claim("other") is None, "taken while alive"
        job = await only_job(other)
        assert (job.state, job.attempts, job.locked_by) == ("running", 1, "runner")
        assert job.locked_until is not None and job.locked_until > first_lease_ends

        finish.set()
        assert await task is True
        job = await only_job(other)
        assert (job.state, job.attempts, job.locked_until) == ("done", 1, None)
        assert handler.calls == [{}]


async def test_a_job_whose_lease_was_lost_is_stopped(sessions: Sessions) -> None:
    """A worker that could not keep its lease (the machine stalled longer than a lease) and
    finds the job taken by another stops running it and leaves it to the new holder."""
    started, stopped = asyncio.Event(), asyncio.Event()

    async def long_job(payload: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    worker = Worker(JobQueue(sessions, lease=0.3), {"long": long_job}, "stalled")
    await enqueue(sessions, "long", {})
    task = asyncio.create_task(worker.run_once())
    await started.wait()
    async with sessions.begin() as session:  # what another worker's claim does
        await session.execute(update(Job).values(attempts=2, locked_by="other"))

    await asyncio.wait_for(stopped.wait(), timeout=10)
    assert await task is True
    job = await only_job(sessions)
    assert (job.state, job.attempts, job.locked_by) == ("running", 2, "other")


# -- graceful shutdown ----------------------------------------------------------------------


async def test_shutdown_lets_the_job_in_flight_finish_within_the_grace_period(
    sessions: Sessions,
) -> None:
    started, finish = asyncio.Event(), asyncio.Event()
    handler = Flaky()

    async def short_job(payload: dict[str, Any]) -> None:
        started.set()
        await finish.wait()
        await handler(payload)

    worker = Worker(JobQueue(sessions), {"short": short_job, "next": Flaky()}, "w1")
    await enqueue(sessions, "short", {})
    running = asyncio.create_task(worker.run_forever())
    await started.wait()
    await enqueue(sessions, "next", {})

    stopping = asyncio.create_task(worker.shutdown(running, grace=30))
    await asyncio.sleep(0)
    finish.set()
    await stopping

    assert running.done() and not running.cancelled()
    assert [(j.kind, j.state, j.attempts) for j in await all_jobs(sessions)] == [
        ("short", "done", 1),
        ("next", "queued", 0),  # a stopping worker takes no new job
    ]
    assert handler.calls == [{}]


async def test_shutdown_returns_a_job_that_outlasts_the_grace_period(
    database_url: str,
) -> None:
    async with database(database_url) as stopping, database(database_url) as other:
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def long_job(payload: dict[str, Any]) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        worker = Worker(JobQueue(stopping), {"long": long_job}, "stopping")
        await enqueue(stopping, "long", {"n": 1})
        running = asyncio.create_task(worker.run_forever())
        await started.wait()

        await worker.shutdown(running, grace=0.05)

        assert cancelled.is_set() and running.done()
        job = await only_job(other)
        assert (job.state, job.attempts, job.locked_by, job.locked_until) == (
            "queued",
            0,
            None,
            None,
        )
        assert job.run_at <= utcnow()
        # Another worker takes it at once, as its first attempt.
        handler = Flaky()
        assert await Worker(JobQueue(other), {"long": handler}, "other").run_until_idle() == 1
        assert handler.calls == [{"n": 1}]
        assert (await only_job(other)).attempts == 1


# -- concurrent execution -----------------------------------------------------------------


async def eventually(condition: Any) -> None:
    """Wait until `await condition()` holds; fail if it never does."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition was never met")


class Gate:
    """A handler whose jobs wait until the gate opens; it counts the jobs in flight."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.finished: list[Any] = []

    async def __call__(self, payload: dict[str, Any]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.open.wait()
        finally:
            self.in_flight -= 1
        self.finished.append(payload["n"])


async def states(sessions: Sessions) -> dict[str, list[int]]:
    """The payload numbers of the jobs in each state."""
    found: dict[str, list[int]] = {}
    for job in await all_jobs(sessions):
        found.setdefault(job.state, []).append(job.payload["n"])
    return found


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run_forever())
    try:
        yield task
    finally:
        await worker.shutdown(task, grace=0)


async def test_run_forever_runs_up_to_its_concurrency_at_once(sessions: Sessions) -> None:
    gate = Gate()
    for n in range(7):
        await enqueue(sessions, "work", {"n": n})
    worker = Worker(JobQueue(sessions), {"work": gate}, "w1", poll_interval=0.02, concurrency=3)
    async with running(worker):
        await eventually(lambda: _is(sessions, running=[0, 1, 2]))
        assert (await states(sessions))["queued"] == [3, 4, 5, 6]
        gate.open.set()
        await eventually(lambda: _is(sessions, done=list(range(7))))
    assert gate.most_in_flight == 3


async def _is(sessions: Sessions, **expected: list[int]) -> bool:
    found = await states(sessions)
    return all(sorted(found.get(state, [])) == numbers for state, numbers in expected.items())


async def test_one_key_runs_at_most_its_share_and_never_delays_another(
    sessions: Sessions,
) -> None:
    """A slow installation fills its share of the slots; the other's jobs, queued after all of
    its jobs, still run and finish while the slow ones wait."""
    slow, fast = Gate(), Flaky()
    for n in range(6):
        await enqueue(sessions, "slow", {"n": n}, concurrency_key="github.com/busy")
    for n in range(6, 9):
        await enqueue(sessions, "fast", {"n": n}, concurrency_key="github.com/other")
    worker = Worker(
        JobQueue(sessions),
        {"slow": slow, "fast": fast},
        "w1",
        poll_interval=0.02,
        concurrency=4,
        per_key=2,
    )
    async with running(worker):
        await eventually(lambda: _is(sessions, done=[6, 7, 8]))
        assert await states(sessions) == {
            "running": [0, 1],
            "queued": [2, 3, 4, 5],
            "done": [6, 7, 8],
        }
        assert [call["n"] for call in fast.calls] == [6, 7, 8]
        slow.open.set()
        await eventually(lambda: _is(sessions, done=list(range(9))))
    assert slow.most_in_flight == 2


async def test_jobs_finishing_together_are_marked_done_in_one_statement(
    sessions: Sessions,
) -> None:
    gate = Gate()
    for n in range(4):
        await enqueue(sessions, "work", {"n": n})
    marked_done: list[str] = []

    def executed(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if sql.startswith("UPDATE jobs") and "'done'" in repr(parameters):
            marked_done.append(sql)

    engine = sessions.kw["bind"].sync_engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", executed)
    worker = Worker(JobQueue(sessions), {"work": gate}, "w1", poll_interval=0.02, concurrency=4)
    try:
        async with running(worker):
            await eventually(lambda: _is(sessions, running=[0, 1, 2, 3]))
            gate.open.set()
            await eventually(lambda: _is(sessions, done=[0, 1, 2, 3]))
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", executed)
    assert len(marked_done) == 1, marked_done


async def test_while_intake_is_busy_a_worker_starts_only_its_reduced_share(
    sessions: Sessions,
) -> None:
    """Webhooks arriving: a worker of 8 slots starts only 2 new jobs; once intake is quiet it
    fills every slot."""
    gate = Gate()
    for n in range(10):
        await enqueue(sessions, "work", {"n": n})
    intake_busy = True
    worker = Worker(
        JobQueue(sessions),
        {"work": gate},
        "w1",
        poll_interval=0.02,
        concurrency=8,
        yield_to=lambda: intake_busy,
    )
    async with running(worker):
        await eventually(lambda: _is(sessions, running=[0, 1]))
        await asyncio.sleep(0.1)  # several polls: still no more than the share
        assert (await states(sessions))["running"] == [0, 1]
        intake_busy = False
        await eventually(lambda: _is(sessions, running=list(range(8))))
        gate.open.set()
        await eventually(lambda: _is(sessions, done=list(range(10))))
    assert gate.most_in_flight == 8


async def test_a_postponed_job_holds_no_slot(sessions: Sessions) -> None:
    async def paced(payload: dict[str, Any]) -> None:
        raise RetryLater(3600, "secondary rate limit")

    handler = Flaky()
    await enqueue(sessions, "paced", {"n": 0})
    await enqueue(sessions, "work", {"n": 1})
    worker = Worker(
        JobQueue(sessions),
        {"paced": paced, "work": handler},
        "w1",
        poll_interval=0.02,
        concurrency=1,
    )
    async with running(worker):
        await eventually(lambda: _is(sessions, queued=[0], done=[1]))
    assert handler.calls == [{"n": 1}]


async def test_shutdown_returns_every_job_in_flight(database_url: str) -> None:
    async with database(database_url) as stopping, database(database_url) as other:
        gate = Gate()
        for n in range(5):
            await enqueue(stopping, "long", {"n": n})
        worker = Worker(
            JobQueue(stopping), {"long": gate}, "stopping", poll_interval=0.02, concurrency=3
        )
        task = asyncio.create_task(worker.run_forever())
        await eventually(lambda: _is(other, running=[0, 1, 2]))

        await worker.shutdown(task, grace=0.05)

        assert task.done() and gate.in_flight == 0 and gate.finished == []
        jobs = await all_jobs(other)
        assert [(j.state, j.attempts, j.locked_by, j.locked_until) for j in jobs] == [
            ("queued", 0, None, None)
        ] * 5


async def test_every_job_in_flight_keeps_its_lease(database_url: str) -> None:
    lease = 0.6
    async with database(database_url) as working, database(database_url) as other:
        gate = Gate()
        for n in range(3):
            await enqueue(working, "long", {"n": n})
        worker = Worker(
            JobQueue(working, lease=lease), {"long": gate}, "w1", poll_interval=0.02, concurrency=3
        )
        async with running(worker):
            await eventually(lambda: _is(other, running=[0, 1, 2]))
            first = {job.id: job.locked_until or utcnow() for job in await all_jobs(other)}
            last_end = max(first.values())
            await asyncio.sleep((last_end - utcnow()).total_seconds() + lease / 2)

            assert await JobQueue(other, lease=lease).claim("other") is None, "taken while alive"
            for job in await all_jobs(other):
                assert job.state == "running"
                assert job.locked_until is not None and job.locked_until > first[job.id]
            gate.open.set()
            await eventually(lambda: _is(other, done=[0, 1, 2]))


# -- fairness between owners ----------------------------------------------------------------


async def test_one_owners_burst_never_holds_another_owners_first_job(sessions: Sessions) -> None:
    """500 deliveries of one installation queued, then one of another: a worker running jobs as
    the server does takes the second owner's job in its first claim, and a worker taking one job
    at a time while the first owner's jobs run takes it next."""
    async with sessions.begin() as session:
        for n in range(500):
            await JobQueue.enqueue(
                session, "github_delivery", {"n": n}, concurrency_key="github.com/installation/1"
            )
        await JobQueue.enqueue(
            session, "github_delivery", {"n": 500}, concurrency_key="github.com/installation/2"
        )
    queue = JobQueue(sessions)
    first = await queue.claim_batch("w1", 4, per_key=4)
    assert sorted(job.payload["n"] for job in first) == [0, 1, 2, 500]


async def test_the_first_job_of_every_owner_is_read_again_only_once_it_is_old(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a burst that read goes through every due job: a worker reuses it for
    `HEADS_TTL`. An owner whose first job came meanwhile is taken once it is read again."""
    async with sessions.begin() as session:
        for n in range(50):
            await JobQueue.enqueue(session, "github_delivery", {"n": n}, concurrency_key="one")
    queue = JobQueue(sessions)
    reads: list[str] = []
    engine = sessions.kw["bind"].sync_engine

    def seen(*args: Any) -> None:
        if "min(jobs.id)" in args[2]:
            reads.append(args[2])

    sqlalchemy.event.listen(engine, "before_cursor_execute", seen)
    try:
        monkeypatch.setattr(conjunction.queue, "HEADS_TTL", 3600.0)  # however slow this machine
        assert [job.payload["n"] for job in await queue.claim_batch("w1", 1)] == [0]
        async with sessions.begin() as session:
            await JobQueue.enqueue(session, "github_delivery", {"n": 50}, concurrency_key="two")
        assert [job.payload["n"] for job in await queue.claim_batch("w1", 1)] == [1]
        assert len(reads) == 1, "reused while it is young"
        monkeypatch.setattr(conjunction.queue, "HEADS_TTL", 0.0)  # and now it is old
        running: Counter[str | None] = Counter({"one": 2})  # as the worker counts what it runs
        taken = await queue.claim_batch("w1", 1, in_flight=running)
        assert [job.payload["n"] for job in taken] == [50]
        assert len(reads) == 2
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", seen)


async def test_a_key_holding_slots_yields_the_next_one_to_a_key_holding_none(
    sessions: Sessions,
) -> None:
    """One slot at a time, as a busy worker frees them: the first job of a key that runs none,
    and of the jobs without a key, goes before the next of a key that runs one."""
    async with sessions.begin() as session:
        for n in range(10):
            await JobQueue.enqueue(session, "github_delivery", {"n": n}, concurrency_key="busy")
        await JobQueue.enqueue(session, "github_delivery", {"n": 10}, concurrency_key="quiet")
        await JobQueue.enqueue(session, "work", {"n": 11})
    queue = JobQueue(sessions)
    taken = []
    running: Counter[str | None] = Counter()
    for _ in range(4):
        [job] = await queue.claim_batch("w1", 1, per_key=4, in_flight=running)
        taken.append(job.payload["n"])
        running[job.concurrency_key] += 1
    assert taken == [0, 10, 11, 1]


async def test_a_burst_of_one_owners_deliveries_may_take_every_slot(sessions: Sessions) -> None:
    """The cap per key holds back forge work, not deliveries: alone in the queue, one owner's
    deliveries fill the worker."""
    async with sessions.begin() as session:
        for n in range(20):
            await JobQueue.enqueue(session, "github_delivery", {"n": n}, concurrency_key="one")
    jobs = await JobQueue(sessions).claim_batch("w1", 16, per_key=4, busy={"one": 4})
    assert sorted(job.payload["n"] for job in jobs) == list(range(16))
