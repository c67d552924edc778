"""The HTTP API for CI systems and people: results, builds, claims, event traces, projects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError, to_json

from conjunction import gitprojects
from conjunction.engine import ResultConflict, UnknownEvent, UpstreamSuccess
from conjunction.forges.webhook import trigger_event
from conjunction.limits import REF, SHA, Ref, Text, Url, no_nul
from conjunction.models import utcnow
from conjunction.names import ProjectName, project_key
from conjunction.results import Result
from conjunction.runs import Via
from conjunction.tokens import use_project_token
from conjunction.views import api as api_views
from conjunction.web.admin import bearer, is_admin, usable_token
from conjunction.web.bodies import large_body_slot, parse_json, problems, read_body
from conjunction.web.context import RUNTIME, json_answer, json_error
from conjunction.web.errors import RequestError

routes = web.RouteTableDef()
MAX_PAGE = 100_000  # of `GET /api/v1/projects`: far past any ecosystem, and an offset SQL takes

# The most of a body each route reads (its token is checked first): a status with its
# metadata, a build with its artifacts, a claim
STATUS_BODY_LIMIT = 64 * 1024
BUILD_BODY_LIMIT = 512 * 1024
CLAIM_BODY_LIMIT = 4 * 1024
MAX_CLAIMANT = 200  # events.run_id
METADATA_LIMIT = 16 * 1024
METADATA_SUMMARY = 2048
COMMIT_ID = re.compile(r"[0-9a-fA-F]{7,64}")
MAX_ARTIFACTS = 100
MAX_ARTIFACT_NAME = 200
# what a CI system may report: a final Result, or that it is running
Reported = Literal["success", "failure", "error", "cancelled", "timed_out", "skipped", "running"]
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "config" / "conjunction.schema.json").read_text()
)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError("http_url", "not an http(s) URL")
    return value


def _summary(value: str) -> str:
    """A failure's excerpt: a longer one is cut to its last METADATA_SUMMARY characters (where
    a log says why), not refused."""
    if len(value) <= METADATA_SUMMARY:
        return value
    return "…" + value[-(METADATA_SUMMARY - 1) :]


HttpUrl = Annotated[Url, AfterValidator(_http_url)]
Summary = Annotated[str, AfterValidator(no_nul), AfterValidator(_summary)]


def _attempt(value: Any) -> int:
    """The CI's attempt a status is of (default 1): a higher one replaces the result, a lower
    one is kept in the history only (CONTRACT §7)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PydanticCustomError("attempt", "an integer of at least 1")
    return value


def _commit_id(value: str) -> str:
    if not COMMIT_ID.fullmatch(value):
        raise PydanticCustomError("commit_id", "not a commit id (7 to 64 hexadecimal digits)")
    return value


class StatusMetadata(BaseModel):
    """What the status API keeps of a result's `metadata`: its known fields, typed. Any other
    field is ignored, and not stored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    sha: Annotated[str, AfterValidator(_commit_id)] | None = None
    ref: Ref | None = None
    attempt: Annotated[int, PlainValidator(_attempt)] | None = None
    summary: Summary | None = None
    log_url: HttpUrl | None = None

    def stored(self) -> dict[str, Any]:
        """The fields given, as the event keeps them."""
        return self.model_dump(exclude_none=True)


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Reported
    url: HttpUrl | None = None
    metadata: StatusMetadata = Field(default_factory=StatusMetadata)

    @field_validator("metadata", mode="before")
    @classmethod
    def _bounded(cls, metadata: Any) -> Any:
        if isinstance(metadata, dict) and len(to_json(metadata)) > METADATA_LIMIT:
            raise PydanticCustomError(
                "metadata_size", f"larger than {METADATA_LIMIT // 1024} KB as JSON"
            )
        return metadata


class ArtifactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=MAX_ARTIFACT_NAME)
    url: HttpUrl


def _claimant(value: str) -> str:
    if not value.strip() or not value.isprintable():
        raise PydanticCustomError("claimant", "must be printable text, not blank")
    return value


class ClaimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectName
    # the run's own id, e.g. Zuul's buildset uuid: its trigger's run id
    claimant: Annotated[
        str, Field(min_length=1, max_length=MAX_CLAIMANT), AfterValidator(_claimant)
    ]


class BuildBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectName
    sha: Text = Field(min_length=4, max_length=SHA)
    ref: Text = Field(min_length=1, max_length=REF)
    result: Result
    url: Url | None = None
    artifacts: list[ArtifactBody] = Field(default_factory=list, max_length=MAX_ARTIFACTS)


def callback_token(request: web.Request) -> str | None:
    """The bearer token, else `?token=` for CI systems that cannot set headers (the URL, token
    and all, may then end up in their logs and in proxies' logs)."""
    return bearer(request) or usable_token(request.query.get("token"))


async def parse_body(request: web.Request, model: type[BaseModel], limit: int) -> Any:
    """The body as `model`, reading at most `limit` bytes of it (413 past that)."""
    async with large_body_slot(request, limit):
        body = await read_body(request, limit=limit)
        try:
            return parse_json(body, model)
        except ValidationError as exc:
            raise RequestError(422, problems(exc)) from None


def split_ref(ref: str) -> tuple[str, str]:
    """`refs/tags/v1` -> (tag, v1); `refs/heads/main` or `main` -> (branch, main)."""
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    return "branch", ref.removeprefix("refs/heads/")


@routes.get("/schema/conjunction.json")
async def config_schema(request: web.Request) -> web.Response:
    """The JSON Schema of `.conjunction.yml`, for editors and validators, its `$id` the address
    it is served at."""
    public_url = request.app[RUNTIME].settings.public_url.rstrip("/")
    return web.json_response({**SCHEMA, "$id": public_url + SCHEMA["$id"]})


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
    body: StatusBody = await parse_body(request, StatusBody, STATUS_BODY_LIMIT)
    metadata = body.metadata
    ref_type, ref = split_ref(metadata.ref) if metadata.ref else ("branch", None)
    stored = metadata.stored()
    try:
        event = await runtime.engine.record_result(
            event_id,
            body.result,
            url=body.url,
            sha=metadata.sha or None,
            ref=ref,
            ref_type=ref_type,
            attempt=metadata.attempt or 1,
            ci_metadata=stored or None,
        )
    except ResultConflict as exc:
        return json_error(409, str(exc))
    except UnknownEvent:
        return json_error(404, f"no trigger event {event_id}")
    runtime.worker.wakeup.set()
    return json_answer({"event_id": event.id, "result": event.result or body.result}, 202)


async def token_project(request: web.Request) -> str:
    """The project whose token the request carries (`Authorization: Bearer`); 401 without a
    live one. Tokens are looked up by their hash."""
    token = bearer(request)
    async with request.app[RUNTIME].sessions.begin() as session:
        owner = await use_project_token(session, token) if token else None
    if owner is None:
        raise RequestError(401, "a valid project token is required (python app.py token create)")
    return owner


@routes.post("/api/v1/builds")
async def post_build(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    owner = await token_project(request)
    body: BuildBody = await parse_body(request, BuildBody, BUILD_BODY_LIMIT)
    if project_key(body.project) != project_key(owner):
        return json_error(403, f"this token reports builds of {owner}, not {body.project}")
    ref_type, ref = split_ref(body.ref)
    async with runtime.sessions.begin() as session:
        await gitprojects.queue_refresh(session, owner)  # its config may have changed too
    artifacts = [artifact.model_dump() for artifact in body.artifacts]
    success = UpstreamSuccess(
        owner, body.sha, ref, ref_type=ref_type, url=body.url, artifacts=artifacts, via=Via.API
    )
    event = await runtime.engine.record_build(success, body.result)
    runtime.worker.wakeup.set()
    return json_answer({"event_id": event.id}, 202)


@routes.post("/api/v1/claims")
async def post_claim(request: web.Request) -> web.Response:
    """A run claims the trigger that started it (`trigger.webhook.claim`): 200 with the trigger
    event as a webhook's default body carries it, 204 when none awaits a claim."""
    runtime = request.app[RUNTIME]
    owner = await token_project(request)
    body: ClaimBody = await parse_body(request, ClaimBody, CLAIM_BODY_LIMIT)
    if project_key(body.project) != project_key(owner):
        return json_error(403, f"this token claims triggers of {owner}, not of {body.project}")
    claimed = await runtime.engine.claim(owner, body.claimant)
    if claimed is None:
        return web.Response(status=204)
    return json_answer(trigger_event(claimed))


async def event_trace(request: web.Request, event_id: str) -> dict[str, Any] | None:
    """An event's trace as this caller may see it (`conjunction.views.api.event_trace`)."""
    runtime = request.app[RUNTIME]
    return await api_views.event_trace(
        runtime.sessions, event_id, admin=is_admin(request), max_depth=runtime.settings.max_depth
    )


@routes.get("/api/v1/events/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    trace = await event_trace(request, event_id)
    if trace is None:
        return json_error(404, f"no event {event_id}")
    return json_answer(trace)


@routes.get("/api/v1/projects")
async def list_projects(request: web.Request) -> web.Response:
    page = _page_number(request, "page", 1, MAX_PAGE)
    per_page = _page_number(request, "per_page", api_views.PER_PAGE, api_views.MAX_PER_PAGE)
    listing = await api_views.project_list(
        request.app[RUNTIME].sessions, admin=is_admin(request), page=page, per_page=per_page
    )
    return json_answer(listing)


def _page_number(request: web.Request, name: str, default: int, most: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not 1 <= int(text) <= most:
        raise RequestError(400, f"{name} must be a whole number from 1 to {most}")
    return int(text)


@routes.get("/api/v1/projects/{project:.+}")
async def get_project(request: web.Request) -> web.Response:
    name = request.match_info["project"]
    view = await api_views.project_view(
        request.app[RUNTIME].sessions, name, admin=is_admin(request)
    )
    if view is None:
        return json_error(404, f"no project {name}")
    return json_answer(view)
