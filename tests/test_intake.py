"""Webhook and API intake under hostile or broken input: what is refused, ignored or kept.

Each test here answers one probe of the intake: unsigned floods, deep or mis-encoded JSON,
over-long ids and strings, mis-shaped payloads, and what the HTTP parser itself refuses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.github.payloads import PAYLOADS
from conjunction.models import Delivery, Event, Job
from conjunction.tokens import create_project_token
from conjunction.web import bodies
from conjunction.web.api import STATUS_BODY_LIMIT
from conjunction.web.bodies import LARGE_BODIES
from conjunction.web.errors import JsonErrorRunner
from testkit.memoryhost import MemoryHost
from testkit.payloads import FIXTURES, fixture, workflow_run
from testkit.signing import signed_headers
from tests.conftest import post_github, runtime
from tests.test_flow import SHA, report_status, start_one

GITLAB = {"X-Gitlab-Token": "gitlab-secret"}
MODELS = (Delivery, Job, Event)


@pytest.fixture
async def any_client(
    aiohttp_client: Any, settings: Settings, database_url: str, forge: MemoryHost
) -> TestClient[Any, Any]:
    """The app on SQLite and, where one is given, on PostgreSQL."""
    settings = settings.model_copy(update={"database_url": database_url})
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    return await aiohttp_client(app)


async def stored(client: TestClient[Any, Any]) -> tuple[int, int, int]:
    """How many deliveries, jobs and events the database holds."""
    counts = [select(func.count()).select_from(model).scalar_subquery() for model in MODELS]
    async with runtime(client).sessions() as session:
        deliveries, jobs, events = (await session.execute(select(*counts))).one()
    return deliveries, jobs, events


async def post_signed(
    client: TestClient[Any, Any], event: str, body: bytes, delivery: str | None = None
) -> Any:
    return await client.post(
        "/webhooks/github", data=body, headers=signed_headers(event, body, delivery)
    )


async def raw_answer(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes, bytes]:
    """Send bytes as they are; (status, headers, body) of the answer, which must come within
    10 s even though the request may never be complete."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    try:
        async with asyncio.timeout(10):
            headers = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", headers)
            assert length is not None
            content = await reader.readexactly(int(length[1]))
    finally:
        writer.close()
    return int(headers.split()[1]), headers, content


def port_of(client: TestClient[Any, Any]) -> int:
    assert client.port is not None
    return client.port


def request_head(path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# Before authentication: nothing buffered, large bodies bounded


async def test_unsigned_post_is_refused_before_its_body_is_read(
    client: TestClient[Any, Any],
) -> None:
    malformed = "X-Hub-Signature-256 header malformed (expected sha256=<64 hex digits>)"
    for signature, error in [
        (None, "X-Hub-Signature-256 header missing"),
        ("sha1=" + "0" * 40, malformed),
        ("sha256=xyz", malformed),
    ]:
        headers = {"X-GitHub-Event": "push"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        # 24 MB announced, 1 KB sent: the answer comes without waiting for the rest.
        head = request_head("/webhooks/github", headers, 24 * 1024 * 1024)
        status, _, content = await raw_answer(port_of(client), head, b"x" * 1024)
        assert (status, json.loads(content)) == (401, {"error": error})
    assert await stored(client) == (0, 0, 0)


async def test_announced_body_over_the_limit_is_refused_unread(
    client: TestClient[Any, Any],
) -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    head = request_head("/webhooks/github", headers, 26 * 1024 * 1024)
    status, _, content = await raw_answer(port_of(client), head)
    assert (status, json.loads(content)) == (
        413,
        {"error": f"request body too large: the limit is {25 * 1024 * 1024} bytes"},
    )


async def test_streamed_body_over_the_limit_is_refused(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost
) -> None:
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False, max_body=1024)
    client = await aiohttp_client(app)

    async def chunks() -> Any:  # no Content-Length: the size shows only while reading
        for _ in range(4):
            yield b'{"padding": "' + b"x" * 500 + b'"}'

    answer = await client.post(
        "/webhooks/github", data=chunks(), headers=signed_headers("ping", b"")
    )
    assert answer.status == 413
    assert await answer.json() == {"error": "request body too large: the limit is 1024 bytes"}
    assert await stored(client) == (0, 0, 0)


async def test_large_bodies_wait_for_a_free_slot(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "SLOT_WAIT_SECONDS", 0.05)
    slots = client.app[LARGE_BODIES]
    for _ in range(bodies.LARGE_BODY_SLOTS):
        await slots.acquire()  # every slot busy with a large body
    large = json.dumps({"zen": "x" * (bodies.LARGE_BODY + 1)}).encode()
    busy = await post_signed(client, "ping", large)
    assert busy.status == 503
    assert busy.headers["Retry-After"] == "10"
    assert await busy.json() == {"error": "too many large requests at once; retry later"}
    assert (await post_signed(client, "ping", b'{"zen": "small"}')).status == 202
    slots.release()
    assert (await post_signed(client, "ping", large)).status == 202


async def test_body_that_trickles_in_frees_its_slot(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "READ_SECONDS", 0.05)
    slots = client.app[LARGE_BODIES]
    for _ in range(bodies.LARGE_BODY_SLOTS - 1):
        await slots.acquire()  # one slot left, for the slow body
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    head = request_head("/webhooks/github", headers, 2 * 1024 * 1024)
    status, _, content = await raw_answer(port_of(client), head, b"x" * 1024)
    assert (status, json.loads(content)) == (
        408,
        {"error": "the body took longer than 0.05 s to arrive"},
    )
    assert not slots.locked(), "the slow body's slot is free again"


# JSON: depth, encodings


async def test_deeply_nested_json_is_refused_on_every_json_endpoint(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    callback = {"Authorization": f"Bearer {runtime(client).engine.signer.token(event_id)}"}
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, "github.com/acme/lib")
    before = await stored(client)
    expected = (400, {"error": "the JSON is nested more than 200 levels deep"})
    for depth in [1_000, 100_000]:
        deep = "[" * depth + "]" * depth
        webhook = await post_signed(client, "push", f'{{"commits": {deep}}}'.encode())
        assert (webhook.status, await webhook.json()) == expected
        gitlab = await client.post(
            "/webhooks/gitlab", data=deep, headers={**GITLAB, "X-Gitlab-Event": "Push Hook"}
        )
        assert (gitlab.status, await gitlab.json()) == expected
        status = await client.post(
            f"/api/v1/events/{event_id}/status",
            data=f'{{"result": "success", "metadata": {{"deep": {deep}}}}}',
            headers=callback,
        )
        if depth * 2 > STATUS_BODY_LIMIT:  # past the status API's size limit: not even read
            assert status.status == 413
        else:
            assert (status.status, await status.json()) == expected
        build = await client.post(
            "/api/v1/builds", data=deep, headers={"Authorization": f"Bearer {token}"}
        )
        assert (build.status, await build.json()) == expected
    assert await stored(client) == before


async def test_json_nested_within_the_limit_is_taken(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    nested: Any = "leaf"
    for _ in range(150):
        nested = {"level": nested}
    answer = await report_status(client, event_id, "success", metadata={"nested": nested})
    assert answer.status == 202


async def test_body_not_in_utf8_is_refused(client: TestClient[Any, Any]) -> None:
    ping = json.dumps(fixture("github/ping.json"))
    not_utf8 = "the body must be JSON encoded as UTF-8, not UTF-16 or UTF-32"
    for body, error in [
        (
            b"\xef\xbb\xbf" + ping.encode(),
            "the body starts with a byte order mark: send UTF-8 without one",
        ),
        (ping.encode("utf-16"), not_utf8),
        (ping.encode("utf-16-le"), not_utf8),
        (ping.encode("utf-32"), not_utf8),
        (
            b'{"zen": "caf\xe9"}',
            "the body is not valid JSON: invalid unicode code point at line 1 column 13",
        ),
    ]:
        answer = await post_signed(client, "ping", body)
        assert (answer.status, await answer.json()) == (400, {"error": error})
    assert await stored(client) == (0, 0, 0)


# Lengths and NUL characters, on both databases


async def test_delivery_id_longer_than_the_column_is_refused(
    any_client: TestClient[Any, Any],
) -> None:
    body = json.dumps(fixture("github/ping.json")).encode()
    answer = await post_signed(any_client, "ping", body, delivery="d" * 101)
    assert (answer.status, await answer.json()) == (
        400,
        {"error": "X-GitHub-Delivery must be at most 100 visible ASCII characters"},
    )
    gitlab = await any_client.post(
        "/webhooks/gitlab",
        json=fixture("gitlab/push_hook.json"),
        headers={**GITLAB, "X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "u" * 101},
    )
    assert (gitlab.status, await gitlab.json()) == (
        400,
        {"error": "X-Gitlab-Event-UUID must be at most 100 visible ASCII characters"},
    )
    longest = await post_signed(any_client, "ping", body, delivery="d" * 100)
    assert longest.status == 202
    assert await stored(any_client) == (1, 1, 0)


async def test_strings_the_database_cannot_store_are_ignored_at_intake(
    any_client: TestClient[Any, Any],
) -> None:
    for field, value, reason in [
        ("head_sha", "a" * 65, "workflow_run.head_sha: String should have at most 64 characters"),
        ("head_branch", "b" * 301, "workflow_run.head_branch: String should have at most 300"),
        ("head_branch", "main\x00", "workflow_run.head_branch: Value error, must not contain NUL"),
        ("name", "CI\x00", "workflow_run.name: Value error, must not contain NUL characters"),
    ]:
        payload = workflow_run("acme/lib", SHA)
        payload["workflow_run"][field] = value
        answer = await post_github(any_client, "workflow_run", payload)
        assert answer.status == 200
        data = await answer.json()
        assert (data["status"], data["event"]) == ("ignored", "workflow_run")
        assert data["reason"].startswith(f"payload not as expected: {reason}")
    assert await stored(any_client) == (0, 0, 0)


async def test_api_strings_the_database_cannot_store_are_refused(
    any_client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(any_client, forge)).event_id
    before = await stored(any_client)
    for metadata, error in [
        ({"sha": "c" * 65}, "metadata.sha: not a commit id (7 to 64 hexadecimal digits)"),
        ({"ref": "r" * 301}, "metadata.ref: String should have at most 300 characters"),
        ({"sha": "c\x00"}, "metadata.sha: not a commit id"),
        ({"ref": "main\x00"}, "metadata.ref: Value error, must not contain NUL characters"),
    ]:
        answer = await report_status(any_client, event_id, "success", metadata=metadata)
        assert answer.status == 422
        assert (await answer.json())["error"].startswith(error)
    answer = await report_status(any_client, event_id, "success", url="https://ci/\x00")
    assert answer.status == 422
    async with runtime(any_client).sessions.begin() as session:
        token = await create_project_token(session, "github.com/acme/lib")
    build = {"project": "github.com/acme/lib", "sha": "d" * 40, "ref": "main", "result": "success"}
    for field, value in [("sha", "d" * 65), ("ref", "main\x00"), ("project", "x" * 301)]:
        answer = await any_client.post(
            "/api/v1/builds",
            json={**build, field: value},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status == 422, field
        assert (await answer.json())["error"].startswith(f"{field}: ")
    assert await stored(any_client) == before


async def test_urls_with_a_nul_are_refused(any_client: TestClient[Any, Any]) -> None:
    refused = (400, {"error": "the URL holds a NUL character (%00)"})
    for path in ["/api/v1/events/%00", "/events/%00", "/api/v1/projects/a%00b", "/?q=%00"]:
        answer = await any_client.get(path)
        assert (answer.status, await answer.json()) == refused, path
    answer = await any_client.post("/api/v1/events/%00/status", json={"result": "success"})
    assert (answer.status, await answer.json()) == refused


# Envelopes: valid real payloads pass, mis-shaped ones are ignored with one log line


async def test_real_payloads_are_accepted(client: TestClient[Any, Any]) -> None:
    names = [path.name for path in (FIXTURES / "github").glob("*.json")]
    handled = sorted(name for name in names if name.split(".")[0] in PAYLOADS)
    assert len(handled) == 15
    for name in handled:
        answer = await post_github(client, name.split(".")[0], fixture(f"github/{name}"))
        assert (answer.status, (await answer.json())["status"]) == (202, "accepted"), name
    gitlab = [
        ("Push Hook", "push_hook.json"),
        ("Pipeline Hook", "pipeline_hook.json"),
        ("Merge Request Hook", "merge_request_hook.json"),
        *(("System Hook", path.name) for path in (FIXTURES / "gitlab").glob("system_*.json")),
        *(("Note Hook", path.name) for path in (FIXTURES / "gitlab").glob("note_hook_*.json")),
    ]
    assert len(gitlab) == 9
    for event, name in gitlab:
        answer = await client.post(
            "/webhooks/gitlab",
            json=fixture(f"gitlab/{name}"),
            headers={**GITLAB, "X-Gitlab-Event": event},
        )
        assert (answer.status, (await answer.json())["status"]) == (202, "accepted"), name
    assert await stored(client) == (24, 24, 0)


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return payload


def _with(payload: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


MISSHAPEN: list[tuple[str, str, Callable[[dict[str, Any]], Any], str]] = [
    ("workflow_run", "workflow_run.completed", lambda p: _with(p, [], "workflow_run"),
     "workflow_run: Input should be an object"),
    ("workflow_run", "workflow_run.completed", lambda p: _without(p, "repository"),
     "repository: Field required"),
    ("workflow_run", "workflow_run.completed", lambda p: _with(p, "1", "workflow_run", "id"),
     "workflow_run.id: Input should be a valid integer"),
    ("push", "push", lambda p: _with(p, "x", "installation"),
     "installation: Input should be an object"),
    ("push", "push", lambda p: _with(p, 2**40, "installation", "id"),
     "installation.id: Input should be less than or equal to 2147483647"),
    ("push", "push", lambda p: _with(p, [{"added": [1]}], "commits"),
     "commits.0.added.0: Input should be a valid string"),
    ("push", "push", lambda p: _with(p, "yes", "repository", "private"),
     "repository.private: Input should be a valid boolean"),
    ("push", "push", lambda p: _with(p, ["created"], "action"),
     "action: Input should be a valid string"),
    ("installation", "installation.created", lambda p: _with(p, "x", "installation"),
     "installation: Input should be an object"),
    ("installation", "installation.created", lambda p: _with(p, [{"id": 1}], "repositories"),
     "repositories.0.full_name: Field required"),
    ("installation_repositories", "installation_repositories.added",
     lambda p: _without(p, "repositories_added"),
     "body: Value error, repositories_added is missing"),
    ("check_suite", "check_suite.completed", lambda p: _with(p, "x", "check_suite", "app"),
     "check_suite.app: Input should be an object"),
    ("status", "status", lambda p: _with(p, [{"name": 1}], "branches"),
     "branches.0.name: Input should be a valid string"),
    ("ping", "ping", lambda p: [p], "body: Input should be an object"),
]  # fmt: skip


async def test_misshapen_github_payload_is_ignored_with_one_log_line(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conjunction.web.webhooks")
    for event, name, mutate, reason in MISSHAPEN:
        caplog.clear()
        payload = mutate(fixture(f"github/{name}.json"))
        answer = await post_signed(client, event, json.dumps(payload).encode())
        assert answer.status == 200
        data = await answer.json()
        assert (data["status"], data["event"]) == ("ignored", event)
        assert data["reason"].startswith(f"payload not as expected: {reason}"), data["reason"]
        assert [record.getMessage() for record in caplog.records] == [
            f"delivery ignored: {data['reason']}"
        ]
    assert await stored(client) == (0, 0, 0)


GITLAB_MISSHAPEN: list[tuple[str, str, Callable[[dict[str, Any]], Any], str]] = [
    ("Push Hook", "push_hook", lambda p: _with(p, "x", "project"),
     "project: Input should be an object"),
    ("Push Hook", "push_hook", lambda p: _with(p, "a" * 65, "after"),
     "after: String should have at most 64 characters"),
    ("Push Hook", "push_hook", lambda p: _with(p, "20", "total_commits_count"),
     "total_commits_count: Input should be a valid integer"),
    ("Pipeline Hook", "pipeline_hook", lambda p: _without(p, "object_attributes"),
     "object_attributes: Field required"),
    ("Pipeline Hook", "pipeline_hook", lambda p: _with(p, 15, "project", "path_with_namespace"),
     "project.path_with_namespace: Input should be a valid string"),
    ("Pipeline Hook", "pipeline_hook",
     lambda p: _with(p, [{"key": "CONJUNCTION_EVENT", "value": "\x00"}],
                     "object_attributes", "variables"),
     "object_attributes.variables.0.value: Value error, must not contain NUL characters"),
    ("System Hook", "system_project_destroy", lambda p: _without(p, "event_name"),
     "body: Value error, neither event_name nor object_kind is given"),
]  # fmt: skip


async def test_misshapen_gitlab_payload_is_ignored(client: TestClient[Any, Any]) -> None:
    for event, name, mutate, reason in GITLAB_MISSHAPEN:
        answer = await client.post(
            "/webhooks/gitlab",
            json=mutate(fixture(f"gitlab/{name}.json")),
            headers={**GITLAB, "X-Gitlab-Event": event},
        )
        assert answer.status == 200
        data = await answer.json()
        assert (data["status"], data["event"]) == ("ignored", event)
        assert data["reason"].startswith(f"payload not as expected: {reason}"), data["reason"]
    assert await stored(client) == (0, 0, 0)


# The HTTP parser's own refusals are JSON too


@pytest.fixture
async def served(settings: Settings, forge: MemoryHost) -> Any:
    """The app served as `python app.py` serves it; yields its port."""
    runner = JsonErrorRunner(create_app(settings, adapters=Adapters.of(forge), run_workers=False))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_requests_the_http_parser_refuses_are_answered_in_json(served: int) -> None:
    too_long = "the request line or a header is longer than 8190 bytes"
    for head, status, error in [
        (
            b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            too_long,
        ),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, too_long),
        (
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"\r\n",
            400,
            "malformed request: Too many headers received",
        ),
        (b"HELLO\r\n\r\n", 400, "malformed request: Invalid method encountered"),
        (
            b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n",
            400,
            "malformed request: Invalid character in chunk size",
        ),
    ]:
        answered, headers, content = await raw_answer(served, head)
        assert b"Content-Type: application/json" in headers
        assert (answered, json.loads(content)) == (status, {"error": error})


async def test_compressed_body_is_taken_as_sent(client: TestClient[Any, Any]) -> None:
    body = b"\x1f\x8bnot really gzip"
    headers = {**signed_headers("ping", body), "Content-Encoding": "gzip"}
    answer = await client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status == 400
    assert await answer.json() == {
        "error": "the body is not valid JSON: expected value at line 1 column 1"
    }
