"""Culprit finding: a new regression over 1,000 upstream commits, searched against a fake CI.

- **runs, pure core**: `conjunction.bisect.next_move` driven to its answer for the culprit at each
of
  the 1,000 positions; the most runs any took (goal ≤ 10: ⌈log2 1000⌉) and the time one whole
  search takes to decide, every step from the start (the core re-reads its runs each time).
- **engine on SQLite**: the real engine with the in-memory code host: the pair passes against
  the first commit and fails against the last; `bisect: true` starts the search once what
  changed is known, and the fake CI answers each step at once through `Engine.record_result`
  (the culprit at a random position). Figures: the runs it took (goal ≤ 10) and the time from
  the failure's result to the answer stored, i.e. the engine's own cost per step (the CI's
  time aside: a real step takes as long as the downstream's pipeline).

    .venv/bin/python -m bench --only bisect [--quick]

--quick: 100 commits (goal ≤ 7 runs).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from bench.common import Options, Row, fresh_database
from conjunction import bisect as core
from conjunction.adapters import Adapters
from conjunction.codehost import Commit
from conjunction.config.settings import Settings
from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.engine import Engine, UpstreamSuccess
from conjunction.models import Bisect, Event
from conjunction.queue import JobQueue, Worker
from conjunction.results import Result
from conjunction.runs import Step
from conjunction.tokens import CallbackSigner
from testkit.memoryhost import MemoryHost

SECTION = "bisect"
LIB, APP = "bench.test/acme/lib", "bench.test/acme/app"
SEED = 10


def _goal(commits: int) -> int:
    return math.ceil(math.log2(commits))


def pure_core(commits: int) -> list[Row]:
    shas = [f"{n:040x}" for n in range(commits)]
    most, took = 0, 0.0
    for culprit in range(commits):
        tried: list[core.Tried] = []
        started = time.perf_counter()
        while isinstance(move := core.next_move(shas, tried, max_runs=100), core.Next):
            bad = shas.index(move.sha) >= culprit
            tried.append(core.Tried(move.sha, core.Outcome.BAD if bad else core.Outcome.GOOD))
        took += time.perf_counter() - started
        assert move.culprit == shas[culprit], "the search found another commit"
        most = max(most, len(tried))
    goal = _goal(commits)
    return [
        Row(
            SECTION,
            f"pure core, {commits:,} commits: most runs",
            most,
            "runs",
            f"≤ {goal}",
            most <= goal,
            details={"positions": commits},
        ),
        Row(
            SECTION,
            f"pure core, {commits:,} commits: one search decided",
            took / commits * 1000,
            "ms",
            details={"positions": commits},
        ),
    ]


async def engine_search(commits: int, options: Options) -> list[Row]:
    history = [Commit(f"{n:040x}", f"Change {n}", "dev", None, login="dev") for n in range(commits)]
    forge = MemoryHost(host="bench.test", history={LIB: history})
    culprit = random.Random(SEED).randrange(1, commits)
    with tempfile.TemporaryDirectory() as folder:
        url = await fresh_database("sqlite", options, Path(folder))
        database = create_engine(url)
        await migrate(database)
        sessions = sessionmaker(database)
        engine = Engine(
            sessions, Adapters.of(forge), Settings(database_url=url), CallbackSigner("k" * 20)
        )
        worker = Worker(JobQueue(sessions), engine.job_handlers(), "bench")
        await engine.index_project(LIB, private=False, default_branch="main", config_text=None)
        await engine.index_project(
            APP,
            private=False,
            default_branch="main",
            config_text=f"upstreams:\n  - project: {LIB}\n    bisect: true\n",
        )
        for commit, result in ((history[0], Result.SUCCESS), (history[-1], Result.FAILURE)):
            await engine.upstream_success(UpstreamSuccess(LIB, commit.sha, "main"))
            await worker.run_until_idle()
            [trigger] = await engine.pending_triggers(APP)
            started = time.perf_counter()
            await engine.record_result(trigger.id, result)
            await worker.run_until_idle()
        runs = 0
        shas = [commit.sha for commit in history]
        while steps := await engine.pending_triggers(APP):
            [step] = steps
            assert step.step == Step.BISECT and step.upstream_sha is not None
            bad = shas.index(step.upstream_sha) >= culprit
            await engine.record_result(step.id, Result.FAILURE if bad else Result.SUCCESS)
            await worker.run_until_idle()
            runs += 1
        took = time.perf_counter() - started
        async with sessions() as session:
            search = await session.scalar(select(Bisect))
            events = len(list(await session.scalars(select(Event.id))))
        await database.dispose()
    assert search is not None and search.answer is not None
    assert search.answer["culprit"] == shas[culprit], "the engine found another commit"
    range_size = commits - 1
    goal = _goal(range_size)
    return [
        Row(
            SECTION,
            f"engine on sqlite, {range_size:,} commits: runs",
            runs,
            "runs",
            f"≤ {goal}",
            runs <= goal,
            details={"culprit": culprit, "events": events},
        ),
        Row(
            SECTION,
            f"engine on sqlite, {range_size:,} commits: failure to answer",
            took * 1000,
            "ms",
            details={"runs": runs, "per_run_ms": took * 1000 / max(runs, 1)},
        ),
    ]


async def run(options: Options) -> list[Row]:
    commits = 100 if options.quick else 1_000
    # the engine's range is the commits after the one the pair passed with: one more in history
    return [*pure_core(commits), *await engine_search(commits + 1, options)]
