"""`workflow_run` completed: a downstream's result, or an upstream success, or both in a chain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gidgethub import routing, sansio

from bot.engine import Engine, UpstreamSuccess
from bot.models import Event

router = routing.Router()

EVENT_ID = re.compile(r"\b[0-9a-f]{32}\b")
CONCLUSIONS = {
    "success": "success",
    "failure": "failure",
    "startup_failure": "error",
    "cancelled": "cancelled",
    "timed_out": "timed_out",
    "skipped": "skipped",
    "neutral": "success",
    "action_required": "error",
    "stale": "cancelled",
}
DISPATCH_EVENTS = {"workflow_dispatch", "repository_dispatch"}
PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target"}


def named_in(pending: Sequence[Event], text: str) -> Event | None:
    """The pending trigger event whose id appears in text."""
    for event_id in EVENT_ID.findall(text):
        for event in pending:
            if event.id == event_id:
                return event
    return None


async def correlate(engine: Engine, project: str, run: dict[str, Any]) -> Event | None:
    """The trigger event this run answers: by run id, by event id in its title, else by time."""
    pending = await engine.pending_triggers(project)
    if not pending:
        return None
    run_id = str(run.get("id"))
    for event in pending:
        if event.run_id == run_id:
            return event
    named = named_in(pending, f"{run.get('display_title') or ''} {run.get('name') or ''}")
    if named is not None:
        return named
    if run.get("event") in DISPATCH_EVENTS:
        waiting = [event for event in pending if event.run_id is None]
        if waiting:
            return waiting[0]
    return None


async def record_build(
    engine: Engine, trigger: Event | None, result: str, build: UpstreamSuccess
) -> None:
    """A finished pipeline answers `trigger`, or else a success is an upstream success."""
    if trigger is not None:
        await engine.record_result(
            trigger.id,
            result,
            url=build.url,
            sha=build.sha,
            ref=build.ref,
            pipeline=build.pipeline,
        )
    elif result == "success":
        await engine.upstream_success(build)


@router.register("workflow_run", action="completed")
async def on_workflow_run_completed(
    event: sansio.Event, gh: Any, *args: Any, engine: Engine, host: str, **kwargs: Any
) -> None:
    run = event.data["workflow_run"]
    project = f"{host}/{event.data['repository']['full_name']}"
    result = CONCLUSIONS.get(run.get("conclusion") or "", "error")
    trigger = await correlate(engine, project, run)
    if trigger is None and run.get("event") in PULL_REQUEST_EVENTS:
        return  # a pull request's run is not a success of the branch it targets
    build = UpstreamSuccess(
        project=project,
        sha=run.get("head_sha"),
        ref=run.get("head_branch"),
        pipeline=run.get("name"),
        url=run.get("html_url"),
    )
    await record_build(engine, trigger, result, build)
