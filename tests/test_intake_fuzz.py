"""Fuzzing the intake: both webhook endpoints, the status API and the builds API.

Properties, on SQLite and (where given) PostgreSQL: never a 500, never a hang, every answer is
JSON, and input that is not accepted leaves the database as it was; a webhook delivery that is
accepted is then processed without error. Bodies are random bytes, random JSON, and real payloads
with a few parts replaced or removed; headers and signatures random or right.

Each test runs a fifth of the profile's examples (tests/conftest.py): 10 by default, 4,000 with
`CONJUNCTION_FUZZ=long`; an example here is a few HTTP requests and database queries.
"""

from __future__ import annotations

import asyncio
import codecs
import copy
import hashlib
import hmac
import json
import string
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.github import payloads as github_payloads
from conjunction.forges.gitlab import payloads as gitlab_payloads
from conjunction.models import Job
from conjunction.tokens import create_project_token
from conjunction.web.errors import JsonErrorRunner
from testkit.memoryhost import MemoryHost
from testkit.payloads import FIXTURES, fixture
from testkit.signing import WEBHOOK_SECRET
from tests.conftest import run_jobs, runtime
from tests.test_flow import start_one
from tests.test_intake import stored

GITHUB_PAYLOADS = {
    path.name: fixture(f"github/{path.name}") for path in (FIXTURES / "github").glob("*.json")
}
GITLAB_PAYLOADS = {
    path.name: fixture(f"gitlab/{path.name}") for path in (FIXTURES / "gitlab").glob("*.json")
}


def gitlab_event(name: str) -> str:
    """The `X-Gitlab-Event` of a fixture (tests/fixtures/gitlab/README.md)."""
    stem = name.removesuffix(".json")
    if stem.startswith("system_"):
        return "System Hook"
    return " ".join(word.capitalize() for word in stem.split("_"))


# Examples share the test's app and database, which is what the function-scoped fixtures hold.
fuzz = settings(
    max_examples=max(5, settings().max_examples // 5),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
RESULTS = ["success", "failure", "error", "cancelled", "timed_out", "skipped", "running"]

header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=120,
)
# `Bearer ` and any text an HTTP client sends (as UTF-8): non-ASCII, emoji, format characters.
bearer_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=80).map(
    lambda token: f"Bearer {token}"
)
# Strings around the lengths the database columns take, with and without NUL.
edge_strings = st.builds(
    lambda char, length: char * length,
    st.sampled_from(["a", "\x00", "é", "😀"]),
    st.sampled_from([0, 1, 63, 64, 65, 100, 101, 200, 201, 300, 301, 2001]),
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | edge_strings
    | st.sampled_from(["1", "true", "off", 1.0, 0])  # what a lax parser would coerce
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def usually(value: Any, otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`value` four times in five, else a draw from `otherwise`."""
    return st.integers(0, 4).flatmap(lambda n: st.just(value) if n else otherwise)


def _places(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) in a JSON value, nested ones included."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in list(items):
        yield value, key
        if isinstance(item, (dict, list)) and item:
            yield from _places(item)


# Keys the handlers and the API read (conjunction/forges/*payloads.py, conjunction/web/api.py):
# half the changes are made there, where a wrong shape or length matters most.
READ_KEYS = {
    *("action", "installation", "id", "repository", "full_name", "private", "default_branch"),
    *("html_url", "ref", "after", "deleted", "commits", "head_commit", "added", "modified"),
    *("removed", "repositories", "repositories_added", "repositories_removed", "workflow_run"),
    *("name", "display_title", "event", "conclusion", "head_sha", "head_branch", "check_suite"),
    *("app", "slug", "message", "sha", "state", "context", "description", "target_url"),
    *("branches", "object_kind", "project", "path_with_namespace", "web_url", "event_name"),
    *("result", "url", "metadata"),
}


def edited(text: str) -> st.SearchStrategy[str]:
    """A string with a NUL in it, or stretched or cut to a length a column holds or not."""
    lengths = st.sampled_from([0, 1, 63, 64, 65, 100, 101, 200, 201, 300, 301, 2001])
    return st.just(text[:1] + "\x00" + text[1:]) | lengths.map(
        lambda length: ((text or "x") * length)[:length]
    )


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> Any:
    """A payload with a few of its parts replaced, edited or removed."""
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(0, 3))):
        places = list(_places(payload)) if isinstance(payload, (dict, list)) and payload else []
        if not places:
            return draw(json_values)
        read = [(container, key) for container, key in places if key in READ_KEYS]
        container, key = draw(st.sampled_from(read or places) | st.sampled_from(places))
        how = draw(st.sampled_from(["replace", "edit", "delete"]))
        if how == "delete" and isinstance(container, dict):
            del container[key]
        elif how == "edit" and isinstance(container[key], str):
            container[key] = draw(edited(container[key]))
        else:
            container[key] = draw(json_values)
    return payload


@st.composite
def bodies(draw: st.DrawFn, payload: Any) -> bytes:
    """JSON close to `payload`, or bytes that are not quite JSON."""
    value = draw(mutated(payload))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    shape = draw(usually("utf-8", st.sampled_from(["bom", "utf-16", "cut", "deep", "bytes"])))
    if shape == "bom":
        return codecs.BOM_UTF8 + text.encode()
    if shape == "utf-16":
        return text.encode("utf-16")
    if shape == "cut":
        return text.encode()[: draw(st.integers(0, len(text)))]
    if shape == "deep":
        depth = draw(st.sampled_from([150, 199, 200, 201, 250, 5000]))
        return ("[" * depth + "]" * depth).encode()
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    return text.encode()


class ProductionServer(TestServer):
    """The test server with the runner `python app.py` uses (the HTTP parser's errors as JSON)."""

    async def _make_runner(self, **kwargs: Any) -> JsonErrorRunner:
        return JsonErrorRunner(self.app, **kwargs)


@pytest.fixture
async def fuzz_client(
    aiohttp_client: Any, settings: Settings, database_url: str, forge: MemoryHost
) -> TestClient[Any, Any]:
    settings = settings.model_copy(update={"database_url": database_url})
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    return await aiohttp_client(ProductionServer(app))


async def post(client: TestClient[Any, Any], path: str, body: bytes, headers: Any) -> None:
    """Post and check the answer: JSON, no 500, within 10 s; the database unchanged unless the
    answer is 202, and every job a 202 queued then runs without error."""
    before = await stored(client)
    last_job = await _last_job(client)
    async with asyncio.timeout(10):
        answer = await client.post(path, data=body, headers=headers)
        data = await answer.json()
    event(f"{answer.status} {data.get('status', '')}")  # --hypothesis-show-statistics
    assert answer.status < 500, data
    assert ("error" in data) == (answer.status >= 400), data
    if answer.status != 202:
        assert await stored(client) == before, data
        return
    await run_jobs(client)
    async with runtime(client).sessions() as session:
        failed = await session.scalars(select(Job).where(Job.id > last_job, Job.state != "done"))
        assert [(job.kind, job.last_error) for job in failed] == []


async def _last_job(client: TestClient[Any, Any]) -> int:
    async with runtime(client).sessions() as session:
        return int(await session.scalar(select(func.max(Job.id))) or 0)


@fuzz
@given(data=st.data())
async def test_fuzz_github_webhook(fuzz_client: TestClient[Any, Any], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(GITHUB_PAYLOADS)))
    body = data.draw(bodies(GITHUB_PAYLOADS[name]))
    event = data.draw(
        usually(
            name.split(".")[0],
            st.sampled_from([*github_payloads.PAYLOADS, "star"]) | header_text,
        )
    )
    headers = {"X-GitHub-Event": event, "Content-Type": data.draw(header_text)}
    delivery = data.draw(st.none() | st.just(str(uuid.uuid4())) | header_text)
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    signature = data.draw(
        usually(
            f"sha256={digest}",
            st.none()
            | header_text
            | st.text(string.hexdigits, min_size=64, max_size=64).map(lambda hex: f"sha256={hex}"),
        )
    )
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    await post(fuzz_client, "/webhooks/github", body, headers)


@fuzz
@given(data=st.data())
async def test_fuzz_gitlab_webhook(fuzz_client: TestClient[Any, Any], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(GITLAB_PAYLOADS)))
    body = data.draw(bodies(GITLAB_PAYLOADS[name]))
    event = gitlab_event(name)
    headers = {
        "X-Gitlab-Event": data.draw(
            usually(event, st.sampled_from(sorted(gitlab_payloads.PAYLOADS)) | header_text)
        ),
        "X-Gitlab-Token": data.draw(usually("gitlab-secret", header_text)),
    }
    delivery = data.draw(st.none() | st.just(str(uuid.uuid4())) | header_text)
    if delivery is not None:
        headers["X-Gitlab-Event-UUID"] = delivery
    await post(fuzz_client, "/webhooks/gitlab", body, headers)


@pytest.fixture
async def trigger(fuzz_client: TestClient[Any, Any], forge: MemoryHost) -> str:
    """The id of a trigger event waiting for its result."""
    return (await start_one(fuzz_client, forge)).event_id


@fuzz
@given(data=st.data())
async def test_fuzz_status_api(
    fuzz_client: TestClient[Any, Any], trigger: str, data: st.DataObject
) -> None:
    event_id = data.draw(usually(trigger, st.text(max_size=40)))
    valid = {"result": data.draw(st.sampled_from(RESULTS)), "url": "https://ci.acme.dev/1"}
    body = data.draw(bodies({**valid, "metadata": {"sha": "c" * 40, "ref": "refs/heads/main"}}))
    token = runtime(fuzz_client).engine.signer.token(trigger)
    authorization = data.draw(usually(f"Bearer {token}", header_text | bearer_text))
    await post(
        fuzz_client,
        f"/api/v1/events/{quote(event_id, safe='')}/status",
        body,
        {"Authorization": authorization, "Content-Type": "application/json"},
    )


@pytest.fixture
async def project_token(fuzz_client: TestClient[Any, Any]) -> str:
    async with runtime(fuzz_client).sessions.begin() as session:
        return await create_project_token(session, "github.com/acme/lib")


@fuzz
@given(data=st.data())
async def test_fuzz_builds_api(
    fuzz_client: TestClient[Any, Any], project_token: str, data: st.DataObject
) -> None:
    valid = {
        "project": "github.com/acme/lib",
        "sha": "d" * 40,
        "ref": "refs/heads/main",
        "result": data.draw(st.sampled_from(RESULTS)),
        "url": "https://ci.acme.dev/2",
    }
    authorization = data.draw(usually(f"Bearer {project_token}", header_text | bearer_text))
    await post(
        fuzz_client,
        "/api/v1/builds",
        data.draw(bodies(valid)),
        {"Authorization": authorization, "Content-Type": "application/json"},
    )
