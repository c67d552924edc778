"""The HTTP API for CI systems and people: results, builds, event traces, projects."""

from __future__ import annotations

import hmac
import json
import statistics
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine import ResultConflict, UnknownEvent, UpstreamSuccess
from bot.forge import project_key
from bot.models import Event, Project, Subscription
from bot.names import ProjectName
from bot.report import FINAL
from bot.tokens import project_for_token
from handlers.context import RUNTIME, json_answer, json_error

routes = web.RouteTableDef()
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "config" / "conjunction.schema.json").read_text()
)

Result = Literal["success", "failure", "error", "cancelled", "timed_out", "skipped", "running"]


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Result
    url: str | None = Field(default=None, max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class BuildBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectName
    sha: str = Field(min_length=4, max_length=64)
    ref: str = Field(min_length=1, max_length=300)
    result: Result
    url: str | None = Field(default=None, max_length=2000)


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_admin(request: web.Request) -> bool:
    admin = request.app[RUNTIME].settings.admin_token
    token = bearer(request)
    return bool(admin and token and hmac.compare_digest(token.encode(), admin.encode()))


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
    token = bearer(request)
    if token is None or not runtime.engine.signer.verify(event_id, token):
        return json_error(401, "the callback token is missing or wrong for this event")
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
    async with runtime.sessions() as session:
        owner = await project_for_token(session, token) if token else None
    if owner is None:
        return json_error(401, "a valid project token is required (python app.py token create)")
    body: BuildBody = await parse_body(request, BuildBody)
    if project_key(body.project) != project_key(owner):
        return json_error(403, f"this token reports builds of {owner}, not {body.project}")
    ref_type, ref = split_ref(body.ref)
    success = UpstreamSuccess(owner, body.sha, ref, ref_type=ref_type, url=body.url)
    event = await runtime.engine.record_build(success, body.result)
    runtime.worker.wakeup.set()
    return json_answer({"event_id": event.id}, 202)


def event_json(event: Event, visible: bool = True) -> dict[str, Any]:
    if not visible:
        return {"id": event.id, "project": None, "private": True, "result": event.result}
    return {
        "id": event.id,
        "kind": event.kind,
        "project": event.project,
        "upstream": event.upstream,
        "parent": event.parent_id,
        "root": event.root_id,
        "depth": event.depth,
        "sha": event.sha,
        "ref": event.ref,
        "pipeline": event.pipeline,
        "url": event.url,
        "result": event.result,
        "change": event.change,
        "reason": event.reason,
        "created_at": event.created_at.isoformat(),
        "started_at": event.started_at.isoformat() if event.started_at else None,
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
    }


async def private_projects(session: AsyncSession, names: set[str]) -> set[str]:
    keys = {project_key(name) for name in names}
    rows = await session.scalars(
        select(Project.key).where(Project.key.in_(keys), Project.private.is_(True))
    )
    return set(rows)


async def event_trace(request: web.Request, event_id: str) -> dict[str, Any] | None:
    """An event with its chain back to the origin and its children, as this caller may see it."""
    runtime = request.app[RUNTIME]
    async with runtime.sessions() as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        chain: list[Event] = []
        parent_id = event.parent_id
        while parent_id is not None and len(chain) <= runtime.settings.max_depth + 1:
            parent = await session.get(Event, parent_id)
            if parent is None:
                break
            chain.append(parent)
            parent_id = parent.parent_id
        children = list(
            await session.scalars(
                select(Event).where(Event.parent_id == event.id).order_by(Event.created_at)
            )
        )
        every = [event, *chain, *children]
        hidden = (
            set()
            if is_admin(request)
            else await private_projects(session, {item.project for item in every})
        )
    if project_key(event.project) in hidden:
        return None

    def show(item: Event) -> dict[str, Any]:
        return event_json(item, project_key(item.project) not in hidden)

    return {
        **show(event),
        "chain": [show(item) for item in reversed(chain)],
        "children": [show(item) for item in children],
    }


@routes.get("/api/v1/events/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    trace = await event_trace(request, event_id)
    if trace is None:
        return json_error(404, f"no event {event_id}")
    return json_answer(trace)


@routes.get("/api/v1/projects/{project:.+}")
async def get_project(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    key = project_key(request.match_info["project"])
    async with runtime.sessions() as session:
        project = await session.get(Project, key)
        if project is None or (project.private and not is_admin(request)):
            return json_error(404, f"no project {request.match_info['project']}")
        upstreams = await session.scalars(
            select(Subscription).where(Subscription.downstream == key)
        )
        downstreams = await session.scalars(
            select(Subscription.downstream).where(Subscription.upstream == key)
        )
        recent = list(
            await session.scalars(
                select(Event)
                .where(Event.project == project.name, Event.kind == "trigger")
                .order_by(Event.created_at.desc())
                .limit(20)
            )
        )
        down_names = set(downstreams)
        hidden = set() if is_admin(request) else await private_projects(session, down_names)
    durations = [
        (event.finished_at - event.started_at).total_seconds()
        for event in recent
        if event.started_at and event.finished_at and event.result in FINAL
    ]
    finished = [event for event in recent if event.result in FINAL - {"skipped"}]
    return json_answer(
        {
            "project": project.name,
            "private": project.private,
            "default_branch": project.default_branch,
            "owners": project.owners,
            "config_error": project.config_error,
            "upstreams": [sub.spec for sub in upstreams],
            "downstreams": sorted(name for name in down_names if name not in hidden),
            "private_downstreams": len(down_names & hidden),
            "recent": [event_json(event) for event in recent],
            "statistics": {
                "results": len(finished),
                "pass_rate": (
                    sum(event.result == "success" for event in finished) / len(finished)
                    if finished
                    else None
                ),
                "median_seconds": statistics.median(durations) if durations else None,
                "max_seconds": max(durations) if durations else None,
            },
        }
    )
