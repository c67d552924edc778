"""`GET /api/v1/projects` and a project's two roles in `GET /api/v1/projects/{project}`, as a
visitor and as the admin: a private project is never listed, counted, named or given an id
for someone who may not see it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, index, report_status, upstream_of

ADMIN = {"Authorization": "Bearer admin-token"}
SECRET = "github.com/acme/secret"


async def get(client: TestClient[Any, Any], path: str, **headers: str) -> tuple[int, Any]:
    answer = await client.get(path, headers=headers)
    return answer.status, await answer.json()


async def test_projects_are_listed_a_page_at_a_time_without_private_ones(
    client: TestClient[Any, Any],
) -> None:
    for name in ["github.com/acme/b", "github.com/Acme/A", "github.com/acme/c"]:
        await index(client, name, None)
    await index(client, SECRET, None, private=True)

    status, first = await get(client, "/api/v1/projects?per_page=2")
    assert status == 200
    assert first == {
        "projects": [
            {
                "project": "github.com/Acme/A",
                "private": False,
                "default_branch": "main",
                "config_valid": True,
                "api": "/api/v1/projects/github.com/Acme/A",
                "page": "/projects/github.com/Acme/A",
            },
            {
                "project": "github.com/acme/b",
                "private": False,
                "default_branch": "main",
                "config_valid": True,
                "api": "/api/v1/projects/github.com/acme/b",
                "page": "/projects/github.com/acme/b",
            },
        ],
        "page": 1,
        "per_page": 2,
        "total": 3,
        "pages": 2,
        "next": "/api/v1/projects?page=2&per_page=2",
        "previous": None,
    }
    status, second = await get(client, first["next"])
    assert [p["project"] for p in second["projects"]] == ["github.com/acme/c"]
    assert (second["next"], second["previous"]) == (None, "/api/v1/projects?page=1&per_page=2")
    assert "secret" not in str(first) + str(second)

    _, everything = await get(client, "/api/v1/projects", **ADMIN)
    assert (everything["total"], everything["per_page"]) == (4, 50)
    assert [(p["project"], p["private"]) for p in everything["projects"]][-1] == (SECRET, True)

    _, beyond = await get(client, "/api/v1/projects?page=9")
    assert (beyond["projects"], beyond["total"], beyond["previous"]) == (
        [],
        3,
        "/api/v1/projects?page=1&per_page=50",
    )


async def test_an_invalid_config_is_listed_as_such(client: TestClient[Any, Any]) -> None:
    await index(client, LIB, None)
    await index_invalid(client, LIB)
    _, listing = await get(client, "/api/v1/projects")
    assert [(p["project"], p["config_valid"]) for p in listing["projects"]] == [(LIB, False)]


async def index_invalid(client: TestClient[Any, Any], name: str) -> None:
    error = await runtime(client).engine.index_project(
        name, private=False, default_branch="main", config_text="upstreams: 3\n"
    )
    assert error is not None


async def test_a_bad_page_is_a_clear_error(client: TestClient[Any, Any]) -> None:
    for query in ["page=0", "page=-1", "page=x", "per_page=201", "per_page=", "page=1e3"]:
        status, body = await get(client, f"/api/v1/projects?{query}")
        assert status == 400, query
        assert body["error"] in {
            "page must be a whole number from 1 to 100000",
            "per_page must be a whole number from 1 to 200",
        }


async def lib_success(
    client: TestClient[Any, Any], forge: MemoryHost, sha: str, result: str
) -> None:
    """An upstream success of LIB at sha: APP reports `result`, the private one runs on."""
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
    await run_jobs(client)
    [request] = [r for p, r in forge.of("start_pipeline") if p == APP and r.upstream_sha == sha]
    await report_status(client, request.event_id, result)
    await run_jobs(client)


async def test_a_project_as_an_upstream_shows_its_successes_rows_and_open_issues(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [lib-team]\nreport:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB))
    await index(client, SECRET, upstream_of(LIB), private=True)

    await lib_success(client, forge, "2" * 40, "success")
    await lib_success(client, forge, "3" * 40, "failure")

    status, lib = await get(client, f"/api/v1/projects/{LIB}")
    assert status == 200
    # as a downstream LIB ran nothing: the old fields keep that meaning
    assert (lib["recent"], lib["statistics"]["results"]) == ([], 0)
    assert lib["downstream"]["recent"] == [] and lib["downstream"]["open_issues"] == []
    upstream = lib["upstream"]
    assert (upstream["downstreams"], upstream["private_downstreams"]) == ([APP], 1)
    latest, earlier = upstream["latest_successes"][:2]
    assert (latest["build"]["project"], latest["build"]["sha"]) == (LIB, "3" * 40)
    assert earlier["build"]["sha"] == "2" * 40
    direct = {"passed": 0, "total": 2, "running": 1, "confirming": 0}
    assert latest["tally"] == {**direct, "tree": direct, "words": "0 of 2 passed, 1 running"}
    rows = sorted(latest["rows"], key=lambda row: row["project"] or "")
    assert rows[0] == {"project": None, "private": True, "result": None}
    assert (rows[1]["project"], rows[1]["result"], rows[1]["verdict"]) == (
        APP,
        "failure",
        "new regression",
    )
    assert upstream["statistics"]["results"] == 2
    assert upstream["statistics"]["pass_rate"] == 0.5
    assert sorted((i["upstream"], i["downstream"]) for i in upstream["open_issues"]) == [
        (LIB, APP),
        (LIB, APP),
    ]
    assert {i["repository"] for i in upstream["open_issues"]} == {
        "github.com/acme/app",
        "github.com/acme/lib",
    }
    assert "secret" not in str(lib)

    _, app = await get(client, f"/api/v1/projects/{APP}")
    assert [i["upstream"] for i in app["downstream"]["open_issues"]] == [LIB, LIB]
    assert app["upstream"]["latest_successes"] == [] and app["upstream"]["open_issues"] == []
    assert app["downstream"]["statistics"]["results"] == 2
    assert app["downstream"]["recent"] == app["recent"]

    _, seen = await get(client, f"/api/v1/projects/{LIB}", **ADMIN)
    assert seen["upstream"]["downstreams"] == [APP, SECRET]
    assert SECRET in [row["project"] for row in seen["upstream"]["latest_successes"][0]["rows"]]
