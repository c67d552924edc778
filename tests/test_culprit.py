"""Culprit finding end to end (CONTRACT §10): a new regression over several upstream commits is
searched by running the downstream against them one at a time, and the first bad commit is
named on the breakage issue, the failing commit's check run and the event page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.codehost import Commit
from conjunction.models import Bisect, Event, utcnow
from conjunction.runner import TriggerRequest
from conjunction.runs import Step
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_commands import comment
from tests.test_confirm import page_text
from tests.test_flow import APP, LIB, events_of, index, report_status

BISECT = f"owners: [alice]\nupstreams:\n  - project: {LIB}\n    bisect: true\n"
APP_SHA = "d" * 40

# the CI's answer for a run against one upstream commit: (index in LIB's history, runs of it
# before) -> result
Oracle = Callable[[int, int], str]


def lib_history(count: int) -> list[Commit]:
    return [
        Commit(
            f"{n:02x}" + "c" * 38,
            f"Change {n} | <b>",
            f"Dev {n}",
            f"https://github.com/acme/lib/commit/{n:02x}",
            login=f"dev{n}",
        )
        for n in range(count)
    ]


def broken_from(culprit: int) -> Oracle:
    return lambda index, _: "failure" if index >= culprit else "success"


def started(forge: MemoryHost) -> list[TriggerRequest]:
    return [request for _, request in forge.of("start_pipeline")]


async def lib_success(client: TestClient[Any, Any], sha: str, run_id: int) -> None:
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
    await run_jobs(client)


async def answer(client: TestClient[Any, Any], request: TriggerRequest, result: str) -> None:
    reply = await report_status(
        client, request.event_id, result, url=f"https://ci.test/{request.event_id}"
    )
    assert reply.status == 202
    await run_jobs(client)


async def regression(
    client: TestClient[Any, Any],
    forge: MemoryHost,
    *,
    commits: int = 9,
    config: str = BISECT,
    failing: int | None = None,
) -> list[Commit]:
    """APP passed against LIB's first commit and fails against its last (or `failing`)."""
    lib = lib_history(commits)
    forge.history = {LIB: lib}
    await index(client, LIB, "owners: [libby]\n")
    await index(client, APP, config)
    await lib_success(client, lib[0].sha, 1)
    await answer(client, started(forge)[-1], "success")
    await lib_success(client, lib[-1 if failing is None else failing].sha, 2)
    await answer(client, started(forge)[-1], "failure")
    return lib


async def waiting_step(client: TestClient[Any, Any]) -> str | None:
    async with runtime(client).sessions() as session:
        found: str | None = await session.scalar(
            select(Event.id).where(Event.step == Step.BISECT, Event.result.is_(None))
        )
        return found


async def run_search(
    client: TestClient[Any, Any], forge: MemoryHost, lib: list[Commit], oracle: Oracle
) -> list[TriggerRequest]:
    """Answer every step of the search as the oracle says; returns the steps' requests."""
    shas = [commit.sha for commit in lib]
    steps: list[TriggerRequest] = []
    await run_jobs(client)
    while (step := await waiting_step(client)) is not None:
        [request] = [r for r in started(forge) if r.event_id == step]
        runs_before = sum(s.upstream_sha == request.upstream_sha for s in steps)
        steps.append(request)
        await answer(client, request, oracle(shas.index(request.upstream_sha), runs_before))
    return steps


async def bisects(client: TestClient[Any, Any]) -> list[Bisect]:
    async with runtime(client).sessions() as session:
        return list(await session.scalars(select(Bisect).order_by(Bisect.id)))


async def test_a_new_regression_over_eight_commits_is_searched_in_three_runs(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = await regression(client, forge)
    [failure] = [e for e in await events_of(client, APP) if e.result == "failure"]
    assert failure.change == "new regression"
    [issue] = forge.issues.values()

    steps = await run_search(client, forge, lib, broken_from(6))

    assert len(steps) == 3
    for request in steps:
        assert request.project == APP and request.upstream == LIB
        assert request.upstream_ref == "main"
        assert request.parent_id == failure.parent_id
        assert request.upstream_sha in [commit.sha for commit in lib[1:8]]
    [search] = await bisects(client)
    assert (search.state, search.running, search.failure_id) == ("done", None, failure.id)
    assert search.answer is not None and search.answer["culprit"] == lib[6].sha

    [comment] = issue["comments"]
    assert comment.startswith("<!-- conjunction:culprit ")
    assert (
        f"**Culprit found**: {APP} first fails against [`{lib[6].sha[:7]}`]({lib[6].url}) "
        f"Change 6 \\| \\<b\\> by @dev6, the first bad one of the 8 upstream commits "
        f"`{lib[0].sha[:7]}`…`{lib[8].sha[:7]}`."
    ) in comment
    assert "3 runs, one upstream commit at a time:" in comment
    assert f"| [`{lib[4].sha[:7]}`]({lib[4].url}) Change 4 \\| \\<b\\> | passed | [run](" in (
        comment
    )
    assert "| failed |" in comment

    # the failing commit's check run names the culprit on the failure's row, nothing else moved
    _, (sha, check) = forge.of("check")[-1]
    assert sha == lib[8].sha
    assert check.conclusion == "failure"
    assert f"culprit: [`{lib[6].sha[:7]}`]({lib[6].url})" in check.summary
    assert check.summary.count(f"| {APP} |") == 1, "bisect steps are no rows"
    [status] = [s for _, (s_sha, s) in forge.of("status") if s_sha == lib[8].sha][-1:]
    assert status.description == "0 of 1 downstream projects passed, 1 new regression"

    # the failure keeps its verdict; the steps are no part of the pair's history
    events = await events_of(client, APP)
    assert [(e.step, e.change) for e in events if e.step != Step.BISECT] == [
        ("first", "passed"),
        ("first", "new regression"),
    ]
    assert all(e.confirms_id == failure.id for e in events if e.step == Step.BISECT)

    shown = await page_text(client, failure.id)
    assert "Culprit search" in shown
    assert f"first bad commit {lib[6].sha[:7]}" in shown
    assert f"{lib[4].sha[:7]} → passed" in shown or f"{lib[4].sha[:7]} passed" in shown

    reply = await runtime(client).engine.bisect(LIB, APP, "alice")
    assert reply.startswith("The culprit search of this failure already ended: the first bad")


async def test_a_later_failure_is_still_failing_not_fixed_by_a_passing_step(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = await regression(client, forge)
    await run_search(client, forge, lib, broken_from(2))
    # the next upstream success fails too: still failing, as steps that passed count for nothing
    forge.history[LIB].append(Commit("e" * 40, "Later", "Dev", None))
    await lib_success(client, "e" * 40, 3)
    await answer(client, started(forge)[-1], "failure")
    latest = (await events_of(client, APP))[-1]
    assert (latest.step, latest.change) == ("first", "still failing")
    assert len(await bisects(client)) == 1, "a still failing pair is not searched again"


async def test_a_newer_upstream_success_does_not_cancel_a_search(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = await regression(client, forge)
    first_step = started(forge)[-1]
    forge.history[LIB].append(Commit("e" * 40, "Later", "Dev", None))
    await lib_success(client, "e" * 40, 3)
    newest = started(forge)[-1]
    assert newest.upstream_sha == "e" * 40
    await answer(client, newest, "failure")
    await answer(client, first_step, "success")
    steps = await run_search(client, forge, lib, broken_from(7))
    [search] = await bisects(client)
    assert search.answer is not None and search.answer["culprit"] == lib[7].sha
    assert len(steps) + 1 <= 3


async def test_a_step_that_times_out_is_skipped_for_a_neighbour(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = await regression(client, forge)

    def oracle(index: int, _: int) -> str:
        if index == 4:  # the first step, the middle of 1..8: its CI errs
            return "error"
        return "failure" if index >= 6 else "success"

    steps = await run_search(client, forge, lib, oracle)
    assert steps[0].upstream_sha == lib[4].sha
    assert steps[1].upstream_sha == lib[5].sha, "the neighbour after it"
    [search] = await bisects(client)
    assert search.answer is not None and search.answer["culprit"] == lib[6].sha
    [comment] = next(iter(forge.issues.values()))["comments"]
    assert "| skipped (error) |" in comment


async def test_max_runs_reached_reports_the_narrowest_range(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    config = BISECT + "    bisect_max_runs: 2\n"
    lib = await regression(client, forge, commits=17, config=config)
    steps = await run_search(client, forge, lib, broken_from(11))
    assert len(steps) == 2
    [search] = await bisects(client)
    assert search.answer is not None
    assert (search.answer["ending"], search.answer["culprit"]) == ("max runs", None)
    assert search.answer["suspects"] == [commit.sha for commit in lib[9:13]]
    [comment] = next(iter(forge.issues.values()))["comments"]
    assert "**Culprit narrowed down** to 4 of the 16 upstream commits" in comment
    assert "the 2 runs allowed (`bisect_max_runs`) were spent" in comment
    _, (_, check) = forge.of("check")[-1]
    assert f"culprit: one of 4 commits `{lib[9].sha[:7]}`…`{lib[12].sha[:7]}`" in check.summary


async def test_with_confirm_a_flaky_step_is_run_again_and_taken_as_good(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    config = BISECT + "    confirm: true\n"
    lib = lib_history(9)
    forge.history = {LIB: lib}
    await index(client, LIB, "owners: [libby]\n")
    await index(client, APP, config)
    await lib_success(client, lib[0].sha, 1)
    await answer(client, started(forge)[-1], "success")
    await lib_success(client, lib[8].sha, 2)
    await answer(client, started(forge)[-1], "failure")
    await answer(client, started(forge)[-1], "failure")  # again: the same commit
    await answer(client, started(forge)[-1], "success")  # where it last passed: a regression
    [failure] = [e for e in await events_of(client, APP) if e.step == "first"][-1:]
    assert failure.change == "new regression"

    def oracle(index: int, before: int) -> str:
        if index == 4 and before == 0:
            return "failure"  # a flake: passes when run again
        return "failure" if index >= 7 else "success"

    steps = await run_search(client, forge, lib, oracle)
    assert [lib.index(next(c for c in lib if c.sha == s.upstream_sha)) for s in steps][:2] == [4, 4]
    [search] = await bisects(client)
    assert search.answer is not None
    assert (search.answer["culprit"], search.answer["flaky"]) == (lib[7].sha, [lib[4].sha])
    [comment] = next(iter(forge.issues.values()))["comments"]
    assert f"`{lib[4].sha[:7]}` failed once and passed when run again: taken as good" in comment
    assert "(again, to confirm)" in comment


async def test_asked_for_on_the_issue(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    engine = runtime(client).engine
    lib = await regression(client, forge, config=f"upstreams:\n  - project: {LIB}\n")
    assert await bisects(client) == [], "not by itself without bisect: true"

    reply = await engine.bisect(LIB.replace("acme", "Acme"), APP, "alice")
    assert reply == (
        f"Searching the 8 upstream commits `{lib[0].sha[:7]}`…`{lib[8].sha[:7]}` for the one "
        f"that broke {APP}: about 3 runs, one at a time. The answer will be posted here."
    )
    again = await engine.bisect(LIB, APP, "bob")
    assert again.startswith(f"A culprit search of {APP} against {LIB} is already under way")
    await run_search(client, forge, lib, broken_from(1))
    [comment] = next(iter(forge.issues.values()))["comments"]
    assert "Asked for by alice." in comment
    assert "Culprit found" in comment

    assert await engine.bisect(LIB, "github.com/acme/other", "alice") == (
        "This pair has no new regression to find the culprit of: nothing was run."
    )


async def test_a_writers_bisect_command_on_the_breakage_issue_starts_the_search(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """`/conjunction bisect` on APP's breakage issue (CONTRACT §9, §10): a reader is refused
    and nothing runs; a writer's command starts the search, whose answer comes to the issue."""
    lib = await regression(client, forge, config=f"upstreams:\n  - project: {LIB}\n")
    [number] = list(forge.issues)
    await post_github(client, "issue_comment", comment("acme/app", number, "/conjunction bisect"))
    await run_jobs(client)
    [(_, (_, refused))] = forge.of("reply")
    assert refused.startswith("Only people who may write to this repository may command")
    assert await bisects(client) == []

    forge.writers = {"Codertocat"}
    asked = comment("acme/app", number, "/conjunction bisect")
    asked["comment"]["id"] += 1  # a new comment
    await post_github(client, "issue_comment", asked)
    await run_jobs(client)
    said = forge.of("reply")[-1][1][1]
    assert said.startswith("Searching the 8 upstream commits")
    await run_search(client, forge, lib, broken_from(4))
    [answer] = forge.issues[number]["comments"]
    assert "Culprit found" in answer and "Asked for by Codertocat." in answer


async def test_a_range_of_one_commit_is_answered_at_once(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = await regression(client, forge, commits=2)
    assert await bisects(client) == [], "one commit: nothing to search by itself"
    before = len(started(forge))
    reply = await runtime(client).engine.bisect(LIB, APP, "alice")
    assert reply == (
        "Only one upstream commit changed, so no run is needed: the first bad commit is "
        f"`{lib[1].sha[:7]}` Change 1 \\| \\<b\\> (0 runs)."
    )
    await run_jobs(client)
    assert len(started(forge)) == before
    [comment] = next(iter(forge.issues.values()))["comments"]
    assert "Only one upstream commit changed since it last passed: no run was needed." in comment


async def test_jobs_list_shows_a_search_in_progress(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await regression(client, forge)
    [progress] = await runtime(client).engine.bisects_in_progress()
    assert (progress.upstream, progress.downstream, progress.commits, progress.runs) == (
        LIB,
        APP,
        8,
        0,
    )
    assert progress.current_sha == started(forge)[-1].upstream_sha


async def event_of(client: TestClient[Any, Any], event_id: str) -> Event:
    async with runtime(client).sessions() as session:
        event = await session.get(Event, event_id)
        assert event is not None
        return event


async def test_a_private_upstreams_commits_are_named_in_its_own_repository_only(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = lib_history(5)
    forge.history = {LIB: lib}
    await index(client, LIB, "owners: [libby]\nreport:\n  issues: true\n", private=True)
    await index(client, APP, BISECT)
    await lib_success(client, lib[0].sha, 1)
    await answer(client, started(forge)[-1], "success")
    await lib_success(client, lib[4].sha, 2)
    await answer(client, started(forge)[-1], "failure")
    await run_search(client, forge, lib, broken_from(2))

    issues = {issue["project"]: issue for issue in forge.issues.values()}
    [in_app] = issues[APP]["comments"]
    [in_lib] = issues[LIB]["comments"]
    assert "**Culprit search done** against 4 commits of a private project, in 2 runs" in in_app
    for commit in lib:
        assert commit.sha[:7] not in in_app and commit.title not in in_app
    assert LIB not in in_app
    assert f"[`{lib[2].sha[:7]}`]({lib[2].url})" in in_lib and "@dev2" in in_lib
    reply = await runtime(client).engine.bisect(LIB, APP, "alice")
    assert reply == (
        "The culprit search of this failure already ended: it ended in 2 runs; the culprit is "
        "named in the upstream only."
    )


async def test_a_step_past_its_deadline_times_out_and_its_neighbour_runs(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = await regression(client, forge)
    first = await waiting_step(client)
    assert first is not None
    async with runtime(client).sessions.begin() as session:
        step = await session.get(Event, first)
        assert step is not None and step.upstream_sha == lib[4].sha
        step.deadline_at = utcnow() - timedelta(seconds=1)
    assert await runtime(client).engine.expire_overdue() == 1
    await run_jobs(client)
    steps = await run_search(client, forge, lib, broken_from(3))
    assert steps[0].upstream_sha == lib[5].sha, "the neighbour after the one that timed out"
    [search] = await bisects(client)
    assert search.answer is not None and search.answer["culprit"] == lib[3].sha
    [comment] = next(iter(forge.issues.values()))["comments"]
    assert "| skipped (timed out) |" in comment
