"""The report on an upstream commit reads its rows' history for all of them at once: what each
row says (time left, what changed since it last passed) is unchanged, and a report of many
rows costs the database no more statements than one of a few."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from conjunction.engine.reports import post_report
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from testkit.statements import statements
from tests.conftest import post_github, run_jobs, runtime
from tests.test_build_times import took
from tests.test_flow import index, report_status, upstream_of

FIRST, SECOND = "1" * 40, "2" * 40


async def two_successes(
    client: TestClient[Any, Any], forge: MemoryHost, upstream: str, downstreams: int
) -> str:
    """Two successes of upstream, each starting its downstreams: after the first, every
    downstream passed (the first in 12 minutes, the rest at once); after the second, the
    second downstream failed and the rest still run. The second success's event id."""
    await index(client, upstream, None)
    names = [f"{upstream}-app{n}" for n in range(downstreams)]
    for name in names:
        await index(client, name, upstream_of(upstream))
    repository = upstream.removeprefix("github.com/")
    by_name: dict[str, Any] = {}
    for run_id, sha in enumerate((FIRST, SECOND), start=1):
        before = len(forge.of("start_pipeline"))
        await post_github(client, "workflow_run", workflow_run(repository, sha, run_id=run_id))
        await run_jobs(client)
        by_name = {request.project: request for _, request in forge.of("start_pipeline")[before:]}
        assert sorted(by_name) == sorted(names)
        if sha == FIRST:
            for request in by_name.values():
                await report_status(client, request.event_id, "success")
            await run_jobs(client)
            await took(client, by_name[names[0]].event_id, 12)
    await report_status(client, by_name[names[1]].event_id, "failure")
    await run_jobs(client)
    return str(by_name[names[1]].parent_id)


async def test_many_rows_cost_as_many_statements_as_a_few(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    engine = runtime(client).engine
    counts = []
    for upstream, downstreams in (("github.com/acme/small", 3), ("github.com/acme/large", 12)):
        source = await two_successes(client, forge, upstream, downstreams)
        with statements(runtime(client).database) as executed:
            await post_report(engine, {"event_id": source})
        counts.append(len(executed))

        _, (sha, status) = forge.of("status")[-1]
        assert (sha, status.state) == (SECOND, "pending")
        assert status.description == (
            f"0 of {downstreams} downstream projects passed, 1 new regression, "
            f"{downstreams - 1} running, about 12 min left"
        )
        _, (_, check) = forge.of("check")[-1]
        compare = f"https://{upstream}/compare/{FIRST}...{SECOND}"
        assert compare in check.summary
        # each row its own pair's estimate (the others' first runs took no time)
        assert f"| {upstream}-app0 | ⏳ running, about 12 min left |" in check.summary
        assert f"| {upstream}-app1 | ❌ new regression |" in check.summary
        assert f"| {upstream}-app2 | ⏳ running, less than a minute left |" in check.summary
        # and every row not passed links what changed since its pair last passed
        assert check.summary.count(f"[compare]({compare})") == downstreams
    small, large = counts
    assert large == small
