"""`Pipeline Hook`: a GitLab CI pipeline changed status; a finished one goes to the engine."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from bot.engine import Engine, FinishedPipeline, ResultConflict
from bot.engine.results import StartedBy
from bot.forges.gitlab.host import GitLabHost
from bot.names import project_key
from bot.results import Result

log = logging.getLogger(__name__)

# Every other status (created, pending, running, manual, scheduled, …) is not an end.
FINISHED = {
    "success": Result.SUCCESS,
    "failed": Result.FAILURE,
    "canceled": Result.CANCELLED,
    "skipped": Result.SKIPPED,
}
# Pipelines created through the API (Conjunction's own), a trigger token or another pipeline
# answer a request; merge-request pipelines never count as a success of a branch.
STARTED_BY: dict[str, StartedBy] = {
    "api": "dispatch",
    "trigger": "dispatch",
    "pipeline": "dispatch",
    "parent_pipeline": "dispatch",
    "merge_request_event": "pull_request",
    "external_pull_request_event": "pull_request",
}
EVENT_VARIABLE = "CONJUNCTION_EVENT"


def variables(pipeline: dict[str, Any]) -> dict[str, str]:
    return {
        str(item["key"]): str(item.get("value") or "")
        for item in pipeline.get("variables") or []
        if isinstance(item, dict) and "key" in item
    }


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
        started_by=STARTED_BY.get(pipeline.get("source") or "", "push"),
    )


async def on_pipeline(data: dict[str, Any], *, engine: Engine, host: str) -> None:
    run = finished_pipeline(data, host)
    if run is None:
        return
    if await _late_result(engine, run, variables(data["object_attributes"]).get(EVENT_VARIABLE)):
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


async def _late_result(engine: Engine, run: FinishedPipeline, event_id: str | None) -> bool:
    """A pipeline Conjunction started whose trigger event already has a result (it timed out,
    or this result came before) is that event's result, never an upstream success."""
    event = await engine.get_event(event_id) if event_id else None
    if (
        event is None
        or event.kind != "trigger"
        or event.result is None
        or project_key(event.project) != project_key(run.project)
    ):
        return False
    with contextlib.suppress(ResultConflict):
        await engine.record_result(
            event.id, run.result, url=run.url, sha=run.sha, ref=run.ref, ref_type=run.ref_type
        )
    log.info("late result %s for trigger %s", run.result, event.id)
    return True
