"""A fake Zuul on loopback: the web API's enqueue route, as strict as Zuul 9's `zuul-web`.

`POST /api/tenant/{tenant}/project/{project}/enqueue` (zuul/web/__init__.py, `enqueue`): the
tenant must exist (404), the request must carry `Authorization: Bearer <token>` (401 without
it or with a token Zuul did not issue) of an admin of that tenant (403: a token of another
tenant), a JSON body (415 for another content type, 400 for one that is not JSON), a project of
the tenant (404), and `pipeline` naming one of its pipelines with either `change` or all of
`ref`, `oldrev` and `newrev` (400 otherwise). The answer is 200 `true`; each accepted enqueue
starts a buildset with its own uuid, as Zuul's `zuul.buildset`.

As Zuul does, an enqueue of an item already in the pipeline (the same project, pipeline, ref and
`newrev`) is answered `true` and left out while that item runs (`dropped`); a test says when a
buildset ends (`finish`).

Stricter than Zuul, to catch a recipe that would only seem to work: no other key is taken, `ref`
is a full ref (`refs/heads/main`), and a revision is a full commit id (40 hexadecimal digits,
as Zuul's merger sets the ref to it) or null (the branch's tip, as a timer trigger's item has).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

REVISION = re.compile(r"[0-9a-f]{40}")
KEYS = {"pipeline", "ref", "oldrev", "newrev", "change"}


@dataclass
class Enqueued:
    """An enqueue Zuul accepted: what it was sent, and the buildset it started."""

    tenant: str
    project: str
    headers: CIMultiDict[str]
    body: dict[str, Any]
    buildset: str


@dataclass
class Tenant:
    projects: set[str]
    pipelines: set[str]


@dataclass
class FakeZuul:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    admin_tokens: dict[str, str] = field(default_factory=dict)  # token -> the tenant it admins
    enqueued: list[Enqueued] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # the status of each request refused
    dropped: list[dict[str, Any]] = field(default_factory=list)  # bodies of items already in
    # the items in a pipeline: (project, pipeline, ref, newrev) -> the buildset running it
    running: dict[tuple[str, str, str, str | None], str] = field(default_factory=dict)
    base: str = ""

    def finish(self, buildset: str) -> None:
        """The buildset ends: its item leaves the pipeline."""
        self.running = {item: b for item, b in self.running.items() if b != buildset}

    def url(self, tenant: str, project: str) -> str:
        return f"{self.base.rstrip('/')}/api/tenant/{tenant}/project/{project}/enqueue"

    async def enqueue(self, request: web.Request) -> web.Response:
        answer = self._answer(request, await request.read())
        if answer.status != 200:
            self.refused.append(answer.status)
        return answer

    def _answer(self, request: web.Request, raw: bytes) -> web.Response:
        tenant = self.tenants.get(request.match_info["tenant"])
        if tenant is None:
            return _error(404, "Unknown tenant")
        header = request.headers.get("Authorization")
        if header is None:
            return _auth_error("MissingAuthError", 'Missing "Authorization" header')
        if not header.lower().startswith("bearer "):
            return _auth_error(
                "InvalidAuthFormat", '"Authorization" header must start with "Bearer"'
            )
        admin_of = self.admin_tokens.get(header[len("Bearer ") :])
        if admin_of is None:
            return _auth_error("AuthTokenInvalidSignatureException", "Invalid signature")
        if admin_of != request.match_info["tenant"]:
            return _error(403, "Forbidden")
        if request.content_type != "application/json":
            return _error(415, "Expected an entity of content type application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "Invalid JSON document")
        project = request.match_info["project"]
        if project not in tenant.projects:
            return _error(404, "Unknown project")
        problem = _problem(body, tenant)
        if problem:
            return _error(400, problem)
        item = (project, body["pipeline"], body.get("ref") or "", body.get("newrev"))
        if item in self.running:
            self.dropped.append(body)
            return web.json_response(True)
        buildset = self.running[item] = uuid.uuid4().hex
        self.enqueued.append(
            Enqueued(
                tenant=request.match_info["tenant"],
                project=project,
                headers=CIMultiDict(request.headers),
                body=body,
                buildset=buildset,
            )
        )
        return web.json_response(True)


def _problem(body: Any, tenant: Tenant) -> str | None:
    """What Zuul (or this fake, stricter) refuses in an enqueue's body."""
    if not isinstance(body, dict) or "pipeline" not in body:
        return "Invalid request body"
    if body["pipeline"] not in tenant.pipelines:
        return "Unknown pipeline"
    if set(body) - KEYS:
        return f"unexpected keys {sorted(set(body) - KEYS)}"
    if "change" in body:
        return None
    if not all(key in body for key in ("ref", "oldrev", "newrev")):
        return "Invalid request body"
    if not isinstance(body["ref"], str) or not body["ref"].startswith("refs/"):
        return "ref must be a full ref, like refs/heads/main"
    for key in ("oldrev", "newrev"):
        value = body[key]
        if value is not None and not (isinstance(value, str) and REVISION.fullmatch(value)):
            return f"{key} must be a commit id of 40 hexadecimal digits, or null"
    return None


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def _auth_error(error: str, description: str) -> web.Response:
    return web.json_response(
        {"description": description, "error": error, "realm": "zuul.acme.dev"},
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="zuul.acme.dev" error="{error}"'},
    )


async def start_zuul(aiohttp_server: Any) -> FakeZuul:
    zuul = FakeZuul()
    app = web.Application()
    app.router.add_post("/api/tenant/{tenant}/project/{project:.+}/enqueue", zuul.enqueue)
    server = await aiohttp_server(app)
    zuul.base = str(server.make_url("/"))
    return zuul


@pytest.fixture
async def zuul(aiohttp_server: Any) -> FakeZuul:
    return await start_zuul(aiohttp_server)
