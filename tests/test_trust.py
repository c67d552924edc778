"""Verdicts a maintainer can trust, end to end through HTTP: what each downstream result means
against its pair's history, as the check, the status, the API and the event page say it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs
from tests.test_flow import APP, LIB, events_of, index, report_status, upstream_of

APP_SHA = "d" * 40


async def lib_success(client: TestClient[Any, Any], sha: str, run_id: int) -> None:
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
    await run_jobs(client)


async def app_result(
    client: TestClient[Any, Any], forge: MemoryHost, result: str, sha: str = APP_SHA
) -> str:
    """APP reports `result` for its latest trigger, run on its own commit `sha`."""
    _, request = forge.of("start_pipeline")[-1]
    answer = await report_status(client, request.event_id, result, metadata={"sha": sha})
    assert answer.status == 202
    await run_jobs(client)
    return str(request.event_id)


async def test_alternating_results_on_one_commit_are_hinted_flaky_not_blamed_silently(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    for n, result in enumerate(["success", "failure", "success"], start=1):
        await lib_success(client, str(n) * 40, n)
        await app_result(client, forge, result)
    _, (_, check) = forge.of("check")[-1]
    assert "| ✅ fixed |" in check.summary  # two flips: a breakage and its fix

    await lib_success(client, "4" * 40, 4)
    event_id = await app_result(client, forge, "failure")

    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.description) == (
        "failure",
        "0 of 1 downstream projects passed, 1 new regression",
    )
    assert f"| {APP} | ❌ new regression (flaky?) |" in check.summary
    trace = await (await client.get(f"/api/v1/events/{event_id}")).json()
    assert (trace["result"], trace["verdict"], trace["hint"]) == (
        "failure",
        "new regression",
        "flaky?",
    )
    page = await (await client.get(f"/events/{event_id}")).text()
    assert "new regression (flaky?)</span>" in page


async def test_every_verdict_is_stored_and_in_the_api(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    results = ["failure", "success", "timed_out", "failure", "failure", "success", "cancelled"]
    for n, result in enumerate(results, start=1):
        await lib_success(client, f"{n:x}" * 40, n)
        await app_result(client, forge, result, sha=f"{n:x}" * 40)
    verdicts = [event.change for event in await events_of(client, APP)]
    assert verdicts == [
        None,
        "fixed",
        "timed out",
        "new regression",
        "still failing",
        "fixed",
        None,
    ]
    project = await (await client.get(f"/api/v1/projects/{APP}")).json()
    assert [event["verdict"] for event in project["recent"]] == verdicts[::-1]


STRANGER = "github.com/stranger/app"


async def test_a_strangers_downstream_is_listed_and_counted_but_never_fails_the_upstream(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [libby]\nreport:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB))
    await index(client, STRANGER, upstream_of(LIB))

    async def both(sha: str, run_id: int, app: str, stranger: str) -> None:
        await lib_success(client, sha, run_id)
        started = {project: request for project, request in forge.of("start_pipeline")}
        await report_status(client, started[APP].event_id, app)
        await report_status(client, started[STRANGER].event_id, stranger)
        await run_jobs(client)

    await both("1" * 40, 1, "success", "success")
    await both("2" * 40, 2, "success", "failure")
    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.conclusion, check.description) == (
        "success",
        "neutral",
        "1 of 2 downstream projects passed, 1 new regression; none blamed on this commit",
    )
    assert f"| {STRANGER} | ❌ new regression (optional) |" in check.summary
    assert [issue["project"] for issue in forge.issues.values()] == [STRANGER]

    await both("3" * 40, 3, "failure", "failure")
    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.description) == (
        "failure",
        "0 of 2 downstream projects passed, 1 new regression, 1 still failing",
    )
    assert f"| {APP} | ❌ new regression |" in check.summary
    assert sorted(issue["project"] for issue in forge.issues.values()) == [APP, LIB, STRANGER]
    [upstream_issue] = [issue for issue in forge.issues.values() if issue["project"] == LIB]
    assert upstream_issue["title"] == f"{APP} fails against {LIB}"


async def test_each_pairs_verdicts_and_flake_rate_are_in_the_project_api(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    secret = "github.com/acme/secret"
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, secret, upstream_of(LIB), private=True)
    for n, result in enumerate(["success", "failure", "success", "failure"], start=1):
        await lib_success(client, str(n) * 40, n)
        started = dict(forge.of("start_pipeline")[-2:])
        await report_status(client, started[APP].event_id, result, metadata={"sha": APP_SHA})
        await report_status(client, started[secret].event_id, "success")
        await run_jobs(client)

    for name in (LIB, APP):
        view = await (await client.get(f"/api/v1/projects/{name}")).json()
        [pair] = view["pairs"]
        assert (pair["upstream"], pair["downstream"]) == (LIB, APP)
        assert [(run["verdict"], run["hint"]) for run in pair["verdicts"]] == [
            ("new regression", "flaky?"),
            ("fixed", None),
            ("new regression", None),
            ("passed", None),
        ]
        assert (pair["flake_rate"], pair["new_regressions"], pair["already_broken"]) == (
            0.25,
            2,
            0,
        )
    admin = {"Authorization": "Bearer admin-token"}
    view = await (await client.get(f"/api/v1/projects/{LIB}", headers=admin)).json()
    assert [pair["downstream"] for pair in view["pairs"]] == [APP, secret]


async def test_the_flaky_hint_is_in_the_breakage_issue_too(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    for n, result in enumerate(["success", "failure", "success", "failure"], start=1):
        await lib_success(client, str(n) * 40, n)
        await app_result(client, forge, result)

    first, second = forge.issues.values()  # opened by the 2nd run, closed by the 3rd
    assert "flaky?" not in first["body"]
    assert first["comments"] == [
        f"{APP} passes again against upstream `3333333` ([run](https://ci.test/{APP}/runs/3)). "
        "Closing."
    ]
    assert second["state"] == "open"
    assert (
        "**flaky?** This pair has been alternating between passing and failing on unchanged "
        "commits lately: this failure may be a flake rather than a breakage."
    ) in second["body"]


async def test_a_private_upstream_is_never_named_in_a_public_downstreams_issue(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [libby]\n", private=True)
    await index(client, APP, upstream_of(LIB, owners="[alice]"))
    for n, result in enumerate(["success", "failure", "failure", "success"], start=1):
        await lib_success(client, str(n) * 40, n)
        await app_result(client, forge, result, sha="abcd"[n - 1] * 40)  # APP's own commits

    [issue] = forge.issues.values()
    assert issue["project"] == APP
    assert issue["title"] == f"{APP} fails against a private project"
    marker, sentence = issue["body"].splitlines()[:2]
    assert marker.startswith("<!-- conjunction:breakage private-")
    assert marker.endswith(f" -> {APP} -->")
    assert sentence == (
        f"**{APP}** passed against the previous successful build of a private project, and "
        "fails against its latest one."
    )
    assert "Downstream owners: @alice" in issue["body"]
    still_failing, fixed = issue["comments"]
    assert still_failing.startswith(
        f"Still failing against the private project's latest build ([run](https://ci.test/{APP}"
        "/runs/3)). Trace: <https://conjunction.test/events/"
    )
    assert fixed == (
        f"{APP} passes again against the private project's latest build "
        f"([run](https://ci.test/{APP}/runs/4)). Closing."
    )
    shown = "\n".join([issue["title"], issue["body"], *issue["comments"]])
    for secret in ("acme/lib", "libby", "2222222", "3333333", "4444444", "/compare/"):
        assert secret not in shown
    marker_again = [m for op, project, m in forge.calls if op == "find_issue"]
    assert marker_again == [marker]  # the one it looked for before opening
