"""Polling upstreams the app is not installed on: conditional requests through the client's
cache, the position kept in the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from gidgethub.sansio import RateLimit
from sqlalchemy import select

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.forges.github import installations
from conjunction.forges.github.poller import UpstreamPoller, next_round_in
from conjunction.models import Event
from conjunction.tokens import CallbackSigner
from testkit.memoryhost import MemoryHost
from tests.fakegithub import FakeGitHub

APP = "github.com/acme/app"
CPYTHON = "github.com/python/cpython"
REPO = "/repos/python/cpython"
RUNS = f"{REPO}/actions/runs?branch=main&status=success&per_page=20"
LIMITED = {
    "X-RateLimit-Limit": "60",
    "X-RateLimit-Remaining": "0",
    "X-RateLimit-Reset": "4000000000",
}


def run(run_id: int, *, branch: str = "main", event: str = "push") -> dict[str, Any]:
    return {
        "id": run_id,
        "name": "Tests",
        "head_sha": f"{run_id:040x}",
        "head_branch": branch,
        "event": event,
        "status": "completed",
        "conclusion": "success",
        "html_url": f"https://github.com/python/cpython/actions/runs/{run_id}",
    }


def runs(*items: dict[str, Any]) -> dict[str, Any]:
    return {"total_count": len(items), "workflow_runs": list(items)}


def answer_runs(gh: FakeGitHub, path: str, etag: str, *items: dict[str, Any]) -> None:
    gh.expect("GET", path, body=runs(*items), headers={"ETag": etag})


def answer_artifacts(gh: FakeGitHub, run_id: int, *items: dict[str, Any]) -> None:
    """The artifacts of a new successful run, asked for its downstreams' triggers."""
    gh.expect(
        "GET",
        f"{REPO}/actions/runs/{run_id}/artifacts?per_page=100",
        body={"total_count": len(items), "artifacts": list(items)},
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Engine]:
    database = db.create_engine(database_url)
    await db.migrate(database)
    sessions = db.sessionmaker(database)
    yield Engine(
        sessions,
        Adapters.of(MemoryHost()),
        Settings(database_url=database_url),
        CallbackSigner("k" * 20),
    )
    await database.dispose()


async def subscribe(engine: Engine, *upstreams: str, extra: str = "") -> None:
    entries = "".join(f"\n  - project: {name}{extra}" for name in upstreams)
    error = await engine.index_project(
        APP, private=False, default_branch="main", config_text=f"upstreams:{entries}\n"
    )
    assert error is None


def poller(engine: Engine, gh: FakeGitHub) -> UpstreamPoller:
    async def client_for(upstream: str) -> FakeGitHub:
        return gh

    return UpstreamPoller(engine, engine.sessions, client_for)


async def triggers(engine: Engine) -> list[tuple[str, str | None, str | None, str | None]]:
    """(downstream, upstream, upstream sha, upstream ref) of every trigger event."""
    async with engine.sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.kind == "trigger").order_by(Event.created_at)
        )
        found = []
        for event in rows:
            parent = await session.get(Event, event.parent_id)
            assert parent is not None
            found.append((event.project, event.upstream, parent.sha, parent.ref))
        return found


async def first_poll(engine: Engine, gh: FakeGitHub) -> UpstreamPoller:
    await subscribe(engine, CPYTHON)
    gh.expect("GET", REPO, body={"default_branch": "main"})
    answer_runs(gh, RUNS, '"e1"', run(12), run(11))
    polling = poller(engine, gh)
    assert await polling.poll_once() == 0
    assert "if-none-match" not in gh.calls[-1].headers
    return polling


async def test_first_poll_records_the_position_then_new_runs_trigger(
    engine: Engine, fake_github: FakeGitHub
) -> None:
    polling = await first_poll(engine, fake_github)
    assert await triggers(engine) == []

    pull_request = run(14, event="pull_request")  # a fork's `main`, not the upstream's
    answer_runs(fake_github, RUNS, '"e2"', pull_request, run(13), run(12), run(11))
    wheel = {"id": 5, "name": "wheel", "expired": False}
    answer_artifacts(fake_github, 13, wheel, {"id": 6, "name": "old", "expired": True})
    assert await polling.poll_once() == 1

    assert fake_github.calls[-2].headers["if-none-match"] == '"e1"'
    assert await triggers(engine) == [(APP, CPYTHON, f"{13:040x}", "main")]
    async with engine.sessions() as session:
        build = await session.scalar(select(Event).where(Event.kind == "build"))
    assert build is not None and build.artifacts == [
        {
            "name": "wheel",
            "id": 5,
            "run_id": "13",
            "repository": CPYTHON,
            "url": "https://github.com/python/cpython/actions/runs/13/artifacts/5",
        }
    ]


async def test_not_modified_triggers_nothing(engine: Engine, fake_github: FakeGitHub) -> None:
    polling = await first_poll(engine, fake_github)
    answer_runs(fake_github, RUNS, '"e1"', run(12), run(11))

    assert await polling.poll_once() == 0
    last = fake_github.calls[-1]
    assert (last.headers["if-none-match"], last.status) == ('"e1"', 304)
    assert await triggers(engine) == []


async def test_installed_upstreams_are_not_polled(engine: Engine, fake_github: FakeGitHub) -> None:
    await engine.index_project(
        "github.com/acme/lib",
        private=False,
        default_branch="main",
        config_text=None,
    )
    await installations.remember(engine.sessions, ["github.com/acme/lib"], 7)
    await subscribe(engine, "github.com/acme/lib")

    assert await poller(engine, fake_github).poll_once() == 0
    assert fake_github.calls == []


async def test_an_error_for_one_upstream_does_not_stop_the_others(
    engine: Engine, fake_github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    await subscribe(engine, "github.com/aaa/gone", CPYTHON)
    fake_github.expect(
        "GET", "/repos/aaa/gone", status=404, body={"message": "Not Found"}, repeat=True
    )
    fake_github.expect("GET", REPO, body={"default_branch": "main"})
    answer_runs(fake_github, RUNS, '"e1"', run(12))
    answer_runs(fake_github, RUNS, '"e2"', run(13), run(12))
    answer_artifacts(fake_github, 13)
    polling = poller(engine, fake_github)

    with caplog.at_level(logging.WARNING, logger="conjunction.forges.github.poller"):
        assert await polling.poll_once() == 0
        assert await polling.poll_once() == 1

    assert await triggers(engine) == [(APP, CPYTHON, f"{13:040x}", "main")]
    assert "cannot poll github.com/aaa/gone: 404" in caplog.text


async def test_state_survives_a_restart(engine: Engine, fake_github: FakeGitHub) -> None:
    await first_poll(engine, fake_github)

    fake_github.expect("GET", REPO, body={"default_branch": "main"})
    answer_runs(fake_github, RUNS, '"e2"', run(13), run(12), run(11))
    answer_artifacts(fake_github, 13)
    assert await poller(engine, fake_github.restarted()).poll_once() == 1

    # the cache is gone: one full answer, and only the run that is new is recorded
    assert "if-none-match" not in fake_github.calls[-2].headers
    assert await triggers(engine) == [(APP, CPYTHON, f"{13:040x}", "main")]


async def test_a_rate_limit_skips_the_upstream_until_the_next_poll(
    engine: Engine, fake_github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    polling = await first_poll(engine, fake_github)
    fake_github.expect(
        "GET", RUNS, status=403, body={"message": "API rate limit exceeded"}, headers=LIMITED
    )
    answer_runs(fake_github, RUNS, '"e2"', run(13), run(12))
    answer_artifacts(fake_github, 13)

    with caplog.at_level(logging.INFO, logger="conjunction.forges.github.poller"):
        assert await polling.poll_once() == 0
    assert "not polling github.com/python/cpython this time: GitHub rate limit" in caplog.text
    assert await polling.poll_once() == 1


async def test_branch_globs_are_polled_without_a_branch_filter(
    engine: Engine, fake_github: FakeGitHub
) -> None:
    await subscribe(engine, CPYTHON, extra='\n    branches: [main, "3.*"]')
    every_branch = f"{REPO}/actions/runs?status=success&per_page=20"
    answer_runs(fake_github, RUNS, '"m1"', run(12))
    answer_runs(fake_github, every_branch, '"a1"', run(12), run(11, branch="3.13"))
    polling = poller(engine, fake_github)
    assert await polling.poll_once() == 0

    fake_github.expect("GET", RUNS, status=304)
    answer_runs(fake_github, every_branch, '"a2"', run(13, branch="3.13"), run(12))
    # a ref that is not the default branch could be a tag: GitHub's git refs say it is not
    not_found = {"message": "Not Found"}
    fake_github.expect("GET", f"{REPO}/git/ref/tags/3.13", status=404, body=not_found)
    answer_artifacts(fake_github, 13)
    assert await polling.poll_once() == 1

    assert await triggers(engine) == [(APP, CPYTHON, f"{13:040x}", "3.13")]


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def allowance(remaining: int, reset_in: float) -> RateLimit:
    return RateLimit(limit=60, remaining=remaining, reset_epoch=NOW.timestamp() + reset_in)


def test_rounds_are_spaced_to_fit_what_is_left_of_the_anonymous_limit() -> None:
    # 25 left for the next hour, 5 kept for artifacts: 5 rounds of 4 requests, 720 s apart
    assert next_round_in(300, 4, allowance(25, 3600), NOW) == 720
    assert next_round_in(300, 4, allowance(60, 600), NOW) == 300  # plenty: the interval
    assert next_round_in(300, 4, allowance(8, 1800), NOW) == 1800  # too few: until the reset
    assert next_round_in(300, 0, allowance(0, 1800), NOW) == 300  # nothing asked anonymously
    assert next_round_in(300, 4, None, NOW) == 300  # GitHub said nothing yet


async def test_an_anonymous_rate_limit_pauses_polling_until_it_lets_up(
    engine: Engine, fake_github: FakeGitHub
) -> None:
    await subscribe(engine, CPYTHON)
    reset = datetime.now(UTC).timestamp() + 1800
    fake_github.expect(
        "GET",
        REPO,
        status=403,
        body={"message": "API rate limit exceeded"},
        headers={**LIMITED, "X-RateLimit-Reset": f"{reset:.0f}"},
    )

    async def anonymous(upstream: str) -> FakeGitHub:
        return fake_github

    polling = UpstreamPoller(engine, engine.sessions, anonymous, anonymous=fake_github)
    assert await polling.poll_once() == 0
    assert fake_github.requests_sent == 1
    assert 1700 < polling.pause(300, 1) < 1801
