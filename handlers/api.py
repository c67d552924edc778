"""The HTTP API for CI systems and people: results, builds, event traces, projects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from bot import gitprojects, views
from bot.engine import ResultConflict, UnknownEvent, UpstreamSuccess
from bot.models import utcnow
from bot.names import ProjectName, project_key
from bot.results import Result
from bot.tokens import use_project_token
from handlers.admin import bearer, is_admin
from handlers.context import RUNTIME, json_answer, json_error

routes = web.RouteTableDef()
MAX_URL = 2000
MAX_ARTIFACTS = 100
MAX_ARTIFACT_NAME = 200
# what a CI system may report: a final Result, or that it is running
Reported = Literal["success", "failure", "error", "cancelled", "timed_out", "skipped", "running"]
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "config" / "conjunction.schema.json").read_text()
)


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Reported
    url: str | None = Field(default=None, max_length=MAX_URL)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError("http_url", "not an http(s) URL")
    return value


class ArtifactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_ARTIFACT_NAME)
    url: Annotated[str, Field(max_length=MAX_URL), AfterValidator(_http_url)]


class BuildBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectName
    sha: str = Field(min_length=4, max_length=64)
    ref: str = Field(min_length=1, max_length=300)
    result: Result
    url: str | None = Field(default=None, max_length=MAX_URL)
    artifacts: list[ArtifactBody] = Field(default_factory=list, max_length=MAX_ARTIFACTS)


def callback_token(request: web.Request) -> str | None:
    """The bearer token, else `?token=` for CI systems that cannot set headers (the URL, token
    and all, may then end up in their logs and in proxies' logs)."""
    return bearer(request) or request.query.get("token") or None


async def parse_body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        raise web.HTTPUnprocessableEntity(reason=problems) from None


def split_ref(ref: str) -> tuple[str, str]:
    """`refs/tags/v1` -> (tag, v1); `refs/heads/main` or `main` -> (branch, main)."""
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    return "branch", ref.removeprefix("refs/heads/")


@routes.get("/schema/conjunction.json")
async def config_schema(request: web.Request) -> web.Response:
    """The JSON Schema of `.conjunction.yml`, for editors and validators."""
    return web.json_response(SCHEMA)


@routes.post("/api/v1/events/{event_id}/status")
async def post_status(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    event_id = request.match_info["event_id"]
    event = await runtime.engine.get_event(event_id)
    if event is None or event.kind != "trigger":
        return json_error(404, f"no trigger event {event_id}")
    token = callback_token(request)
    if token is None or not runtime.engine.signer.verify(event_id, token):
        return json_error(401, "the callback token is missing or wrong for this event")
    if event.deadline_at is not None and event.deadline_at < utcnow():
        return json_error(
            401,
            f"the callback token of event {event_id} expired at "
            f"{event.deadline_at:%Y-%m-%d %H:%M:%S} UTC: results are taken until the "
            "event's result timeout (CONJUNCTION_RESULT_TIMEOUT)",
        )
    body: StatusBody = await parse_body(request, StatusBody)
    metadata = body.metadata
    ref_type, ref = split_ref(str(metadata["ref"])) if metadata.get("ref") else ("branch", None)
    try:
        event = await runtime.engine.record_result(
            event_id,
            body.result,
            url=body.url,
            sha=str(metadata["sha"]) if metadata.get("sha") else None,
            ref=ref,
            ref_type=ref_type,
            details={"metadata": metadata} if metadata else None,
        )
    except ResultConflict as exc:
        return json_error(409, str(exc))
    except UnknownEvent:
        return json_error(404, f"no trigger event {event_id}")
    runtime.worker.wakeup.set()
    return json_answer({"event_id": event.id, "result": event.result or body.result}, 202)


@routes.post("/api/v1/builds")
async def post_build(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    token = bearer(request)
    async with runtime.sessions.begin() as session:
        owner = await use_project_token(session, token) if token else None
    if owner is None:
        return json_error(401, "a valid project token is required (python app.py token create)")
    body: BuildBody = await parse_body(request, BuildBody)
    if project_key(body.project) != project_key(owner):
        return json_error(403, f"this token reports builds of {owner}, not {body.project}")
    ref_type, ref = split_ref(body.ref)
    async with runtime.sessions.begin() as session:
        await gitprojects.queue_refresh(session, owner)  # its config may have changed too
    artifacts = [artifact.model_dump() for artifact in body.artifacts]
    success = UpstreamSuccess(
        owner, body.sha, ref, ref_type=ref_type, url=body.url, artifacts=artifacts
    )
    event = await runtime.engine.record_build(success, body.result)
    runtime.worker.wakeup.set()
    return json_answer({"event_id": event.id}, 202)


async def event_trace(request: web.Request, event_id: str) -> dict[str, Any] | None:
    """An event's trace as this caller may see it (`bot.views.event_trace`)."""
    runtime = request.app[RUNTIME]
    return await views.event_trace(
        runtime.sessions, event_id, admin=is_admin(request), max_depth=runtime.settings.max_depth
    )


@routes.get("/api/v1/events/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    trace = await event_trace(request, event_id)
    if trace is None:
        return json_error(404, f"no event {event_id}")
    return json_answer(trace)


@routes.get("/api/v1/projects/{project:.+}")
async def get_project(request: web.Request) -> web.Response:
    name = request.match_info["project"]
    view = await views.project_view(request.app[RUNTIME].sessions, name, admin=is_admin(request))
    if view is None:
        return json_error(404, f"no project {name}")
    return json_answer(view)
