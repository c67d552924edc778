"""`Pipeline Hook`: a GitLab CI pipeline changed status; a finished one goes to the engine."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from conjunction.engine_api import EngineAPI, FinishedPipeline, ResultConflict, StartedBy
from conjunction.forges.gitlab.host import GitLabHost
from conjunction.models import Event
from conjunction.names import project_key
from conjunction.results import Result

log = logging.getLogger(__name__)

# Every other status (created, pending, running, manual, scheduled, …) is not an end.
FINISHED = {
    "success": Result.SUCCESS,
    "failed": Result.FAILURE,
    "canceled": Result.CANCELLED,
    "skipped": Result.SKIPPED,
}
# Pipelines created through the API, a trigger token or another project's pipeline may answer a
# Conjunction request: they do when they carry its event variable or are the run a trigger event
# waits for (see `started_by`). Merge-request pipelines never count as a success of a branch.
REQUESTED = {"api", "trigger", "pipeline"}
STARTED_BY: dict[str, StartedBy] = {
    "merge_request_event": "pull_request",
    "external_pull_request_event": "pull_request",
}
# A child pipeline (`trigger: include:`) is part of its parent pipeline, whose own hook brings the
# result: it is neither a result nor an upstream success of its own.
CHILD = "parent_pipeline"
EVENT_VARIABLE = "CONJUNCTION_EVENT"


def variables(pipeline: dict[str, Any]) -> dict[str, str]:
    return {
        str(item["key"]): str(item.get("value") or "")
        for item in pipeline.get("variables") or []
        if isinstance(item, dict) and "key" in item
    }


def started_by(pipeline: dict[str, Any]) -> StartedBy:
    """How a pipeline started, as the engine matches it to a trigger event. An API, trigger-token
    or multi-project pipeline is a dispatch only when it carries CONJUNCTION_EVENT (and
    `on_pipeline` checks that it names a trigger event of this project); Conjunction's pipeline
    without it is the run a trigger event waits for, which the engine matches by id. Anyone
    else's such pipeline never answers the oldest trigger event still waiting for its pipeline
    (one whose creation failed and will be retried, say): it counts as a push, an upstream
    success when it passed."""
    source = pipeline.get("source") or ""
    if source in REQUESTED:
        return "dispatch" if EVENT_VARIABLE in variables(pipeline) else "push"
    return STARTED_BY.get(source, "push")


def finished_pipeline(data: dict[str, Any], host: str) -> FinishedPipeline | None:
    """The pipeline in neutral terms, or None while it has not finished."""
    pipeline = data["object_attributes"]
    result = FINISHED.get(pipeline.get("status") or "")
    if result is None:
        return None
    pipeline_id = pipeline.get("id")
    return FinishedPipeline(
        project=f"{host}/{data['project']['path_with_namespace']}",
        sha=pipeline.get("sha"),
        ref=pipeline.get("ref"),
        result=result,
        ref_type="tag" if pipeline.get("tag") else "branch",
        pipeline=pipeline.get("name"),
        run_id=str(pipeline_id) if pipeline_id is not None else None,
        # the event id a Conjunction pipeline carries, for matching its trigger event
        title=f"{pipeline.get('name') or ''} {variables(pipeline).get(EVENT_VARIABLE, '')}",
        url=pipeline.get("url"),
        started_by=started_by(pipeline),
    )


async def on_pipeline(data: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    if data["object_attributes"].get("source") == CHILD:
        return
    run = finished_pipeline(data, host)
    if run is None:
        return
    event = await _own_trigger(engine, run, variables(data["object_attributes"]))
    if event is None and run.started_by == "dispatch":
        run = replace(run, started_by="push")  # another project's event id, forwarded to it
    if event is not None and await _late_result(engine, run, event):
        return
    gitlab = engine.adapters.host(run.project)
    if (
        isinstance(gitlab, GitLabHost)
        and run.result is Result.SUCCESS
        and run.run_id is not None
        and run.started_by != "pull_request"
        and await engine.has_downstreams(run.project)
    ):
        run = replace(run, artifacts=await gitlab.pipeline_artifacts(run.project, run.run_id))
    await engine.pipeline_finished(run)


async def _own_trigger(
    engine: EngineAPI, run: FinishedPipeline, pipeline_variables: dict[str, str]
) -> Event | None:
    """The trigger event of this project that the pipeline's CONJUNCTION_EVENT names, if any."""
    event_id = pipeline_variables.get(EVENT_VARIABLE)
    event = await engine.get_event(event_id) if event_id else None
    if (
        event is None
        or event.kind != "trigger"
        or project_key(event.project) != project_key(run.project)
    ):
        return None
    return event


async def _late_result(engine: EngineAPI, run: FinishedPipeline, event: Event) -> bool:
    """A pipeline Conjunction started whose trigger event already has a result (it timed out,
    or this result came before) is that event's result, never an upstream success."""
    if event.result is None:
        return False
    with contextlib.suppress(ResultConflict):
        await engine.record_result(
            event.id, run.result, url=run.url, sha=run.sha, ref=run.ref, ref_type=run.ref_type
        )
    log.info("late result %s for trigger %s", run.result, event.id)
    return True
