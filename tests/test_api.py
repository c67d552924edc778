"""The HTTP API as CI systems and people use it, including every error answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.tokens import create_project_token
from testkit.memoryhost import MemoryHost
from testkit.payloads import fixture, workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, SHA, index, report_status, start_one, upstream_of


async def test_status_errors(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    event_id = (await start_one(client, forge)).event_id
    url = f"/api/v1/events/{event_id}/status"

    wrong = await client.post(
        url, json={"result": "success"}, headers={"Authorization": "Bearer x"}
    )
    assert wrong.status == 401
    assert (await wrong.json()) == {
        "error": "the callback token is missing or wrong for this event"
    }
    assert (await client.post(url, json={"result": "success"})).status == 401

    unknown = await report_status(client, "0" * 32, "success")
    assert unknown.status == 404
    assert (await unknown.json()) == {"error": f"no trigger event {'0' * 32}"}

    bad = await report_status(client, event_id, "green")
    assert bad.status == 422
    assert (await bad.json())["error"].startswith("result: Input should be 'success'")

    token = runtime(client).engine.signer.token(event_id)
    garbled = await client.post(
        url,
        data=b"{",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert garbled.status == 400

    assert (await report_status(client, event_id, "failure")).status == 202
    again = await report_status(client, event_id, "failure")
    assert again.status == 202
    conflict = await report_status(client, event_id, "success")
    assert conflict.status == 409
    assert "already finished with 'failure'" in (await conflict.json())["error"]


async def test_running_then_final_result_with_metadata(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    running = await report_status(client, event_id, "running", url="https://ci.acme.dev/b/1")
    assert running.status == 202
    answer = await report_status(
        client, event_id, "success", metadata={"sha": "c" * 40, "ref": "refs/heads/main"}
    )
    assert (await answer.json()) == {"event_id": event_id, "result": "success"}
    trace = await (await client.get(f"/api/v1/events/{event_id}")).json()
    assert (trace["result"], trace["sha"], trace["ref"], trace["url"]) == (
        "success",
        "c" * 40,
        "main",
        "https://ci.acme.dev/b/1",
    )
    assert trace["chain"][0]["project"] == LIB


async def test_builds_api_needs_a_project_token(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, LIB)
    body = {"project": LIB, "sha": SHA, "ref": "refs/heads/main", "result": "success", "url": None}

    assert (await client.post("/api/v1/builds", json=body)).status == 401
    other = await client.post(
        "/api/v1/builds",
        json={**body, "project": APP},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert other.status == 403
    answer = await client.post(
        "/api/v1/builds", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status == 202
    event_id = (await answer.json())["event_id"]
    await run_jobs(client)
    [(project, request)] = forge.of("start_pipeline")
    assert (project, request.parent_id, request.upstream_ref) == (APP, event_id, "main")

    failed = await client.post(
        "/api/v1/builds",
        json={**body, "result": "failure"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert failed.status == 202
    await run_jobs(client)
    assert len(forge.of("start_pipeline")) == 1


async def test_private_projects_need_the_admin_token(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB), private=True)
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [(_, request)] = forge.of("start_pipeline")

    assert (await client.get(f"/api/v1/events/{request.event_id}")).status == 404
    admin = {"Authorization": "Bearer admin-token"}
    seen = await client.get(f"/api/v1/events/{request.event_id}", headers=admin)
    assert (await seen.json())["project"] == APP

    origin = await (await client.get(f"/api/v1/events/{request.parent_id}")).json()
    # a private downstream's event is "a private project": no name, link or id (CONTRACT §3)
    assert origin["children"] == [{"project": None, "private": True, "result": None}]
    assert request.event_id not in await (await client.get(f"/events/{request.parent_id}")).text()
    lib = await (await client.get(f"/api/v1/projects/{LIB}")).json()
    assert (lib["downstreams"], lib["private_downstreams"]) == ([], 1)
    assert (await client.get(f"/api/v1/projects/{APP}")).status == 404
    assert (await client.get(f"/api/v1/projects/{APP}", headers=admin)).status == 200

    _, (_, check) = forge.of("check")[-1]
    assert "acme/app" not in check.summary
    assert "| 1 private project | 1 ⏳ running |" in check.summary


async def raw_request(
    client: TestClient[Any, Any], method: str, path: str, authorization: bytes, body: bytes = b""
) -> tuple[int, bytes]:
    """Send a request whose Authorization header is the given bytes, as they are (an HTTP
    client would refuse to send bytes that are not UTF-8); the answer's status and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: conjunction.test\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    writer.write(head + b"Authorization: " + authorization + b"\r\n\r\n" + body)
    await writer.drain()
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), content


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff\xfe", b"Bearer caf\xc3\xa9", b"Bearer to\tken", b"bearer tok\xe9n"],
)
async def test_a_token_that_is_not_printable_ascii_is_no_token(
    client: TestClient[Any, Any], forge: MemoryHost, authorization: bytes
) -> None:
    """Undecodable bytes, UTF-8 text or control characters after `Bearer`: the API answers its
    usual 401, and pages and the project API answer as for a visitor without a token."""
    event_id = (await start_one(client, forge)).event_id
    await index(client, "github.com/acme/secret", None, private=True)
    async with runtime(client).sessions.begin() as session:
        await create_project_token(session, LIB)
    result = json.dumps({"result": "success"}).encode()

    status = await raw_request(
        client, "POST", f"/api/v1/events/{event_id}/status", authorization, result
    )
    assert (status[0], json.loads(status[1])) == (
        401,
        {"error": "the callback token is missing or wrong for this event"},
    )
    build = json.dumps(
        {"project": LIB, "sha": SHA, "ref": "main", "result": "success", "url": None}
    ).encode()
    builds = await raw_request(client, "POST", "/api/v1/builds", authorization, build)
    assert (builds[0], json.loads(builds[1])) == (
        401,
        {"error": "a valid project token is required (python app.py token create)"},
    )
    project = await raw_request(client, "GET", f"/api/v1/projects/{LIB}", authorization)
    assert project[0] == 200
    assert json.loads(project[1])["downstreams"] == [APP]
    hidden = await raw_request(
        client, "GET", "/api/v1/projects/github.com/acme/secret", authorization
    )
    assert (hidden[0], json.loads(hidden[1])) == (
        404,
        {"error": "no project github.com/acme/secret"},
    )
    dashboard = await raw_request(client, "GET", "/", authorization)
    assert dashboard[0] == 200
    assert b"acme/lib" in dashboard[1]
    assert b"acme/secret" not in dashboard[1]

    assert (await runtime(client).engine.get_event(event_id)).result is None  # type: ignore[union-attr]
    # The same through an HTTP client, which sends the text as UTF-8.
    cafe = await client.post(
        f"/api/v1/events/{event_id}/status",
        json={"result": "success"},
        headers={"Authorization": "Bearer café"},
    )
    assert cafe.status == 401
    query = await client.post(
        f"/api/v1/events/{event_id}/status?token=caf%C3%A9", json={"result": "success"}
    )
    assert query.status == 401


async def test_project_statistics(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    event_id = (await start_one(client, forge)).event_id
    await report_status(client, event_id, "success")
    answer = await client.get("/api/v1/projects/GitHub.com/Acme/App")
    data = await answer.json()
    assert data["upstreams"][0]["project"] == LIB
    assert data["statistics"]["results"] == 1
    assert data["statistics"]["pass_rate"] == 1.0
    assert data["statistics"]["median_seconds"] is not None


async def test_schema_health_and_metrics(client: TestClient[Any, Any]) -> None:
    schema = await (await client.get("/schema/conjunction.json")).json()
    assert "upstreams" in schema["properties"]
    assert schema["$id"] == "https://conjunction.test/schema/conjunction.json"
    health = await client.get("/healthz")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    await post_github(client, "star", {})
    metrics = await (await client.get("/metrics")).text()
    assert 'conjunction_webhook_deliveries_total{forge="github",outcome="ignored"}' in metrics
    assert "conjunction_job_seconds" in metrics


async def test_health_is_503_when_the_database_is_gone(client: TestClient[Any, Any]) -> None:
    await runtime(client).database.dispose()
    runtime(client).database.sync_engine.pool._creator = _refuse
    answer = await client.get("/healthz")
    assert (answer.status, await answer.json()) == (
        503,
        {"error": "the database does not take writes"},
    )
    assert answer.headers["Retry-After"] == "10"


def _refuse(*args: Any) -> Any:
    raise OSError("database is down")


async def test_unknown_route_and_oversized_body(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost
) -> None:
    client = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False, max_body=1024)
    )
    missing = await client.get("/nope")
    assert (missing.status, await missing.json()) == (404, {"error": "Not Found"})
    big = await post_github(client, "push", {"padding": "x" * 2048})
    assert big.status == 413
    assert (await big.json()) == {"error": "request body too large: the limit is 1024 bytes"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Gitlab-Token": "wrong"}, 401),
        ({}, 401),
        ({"X-Gitlab-Token": "gitlab-secret", "X-Gitlab-Event": "Issue Hook"}, 200),
        ({"X-Gitlab-Token": "gitlab-secret", "X-Gitlab-Event": "Pipeline Hook"}, 202),
    ],
)
async def test_gitlab_webhook_token(
    client: TestClient[Any, Any], headers: dict[str, str], status: int
) -> None:
    pipeline = fixture("gitlab/pipeline_hook.json")
    answer = await client.post("/webhooks/gitlab", json=pipeline, headers=headers)
    assert answer.status == status


async def test_event_page_shows_the_trace(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    event_id = (await start_one(client, forge)).event_id
    await report_status(client, event_id, "failure", url="https://ci.acme.dev/<b>/1")
    origin = (await (await client.get(f"/api/v1/events/{event_id}")).json())["parent"]
    page = await client.get(f"/events/{origin}")
    assert page.content_type == "text/html"
    html = await page.text()
    assert "0 of 1 downstream projects passed" in html
    assert f'<a href="/projects/{APP}"><strong>{APP}</strong></a>' in html
    assert f'<a href="/events/{event_id}">trace</a>' in html
    assert "st-failed" in html, "the failure's icon"
    assert 'href="https://ci.acme.dev/&lt;b&gt;/1"' in html
    assert (await client.get("/events/nope")).status == 404


async def test_dashboard_lists_public_projects(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    await index(client, "github.com/acme/secret", upstream_of(LIB), private=True)
    await report_status(client, event_id, "success")
    origin = (await (await client.get(f"/api/v1/events/{event_id}")).json())["parent"]
    html = await (await client.get("/")).text()
    assert "2 public projects." in html
    assert f'<a href="/projects/{APP}">{APP}</a>' in html
    assert f'<a href="/projects/{LIB}">{LIB}</a>' in html
    assert f'<a href="/events/{origin}"><code>{SHA[:7]}</code></a>' in html, "LIB's latest"
    assert "1 of 1 downstream projects passed" in html
    assert "acme/secret" not in html
