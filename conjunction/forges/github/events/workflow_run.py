"""`workflow_run` completed: a GitHub Actions run finished."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from gidgethub import routing, sansio

from conjunction.engine_api import EngineAPI, FinishedPipeline, StartedBy
from conjunction.forges.github import tags
from conjunction.forges.github.artifacts import run_artifacts
from conjunction.forges.github.payloads import timestamp
from conjunction.results import Result

router = routing.Router()

CONCLUSIONS = {
    "success": Result.SUCCESS,
    "failure": Result.FAILURE,
    "startup_failure": Result.ERROR,
    "cancelled": Result.CANCELLED,
    "timed_out": Result.TIMED_OUT,
    "skipped": Result.SKIPPED,
    "neutral": Result.SUCCESS,
    "action_required": Result.ERROR,
    "stale": Result.CANCELLED,
}
STARTED_BY: dict[str, StartedBy] = {
    "workflow_dispatch": "workflow_dispatch",
    "repository_dispatch": "repository_dispatch",
    "pull_request": "pull_request",
    "pull_request_target": "pull_request",
}


def conclusion(value: str | None) -> Result:
    return CONCLUSIONS.get(value or "", Result.ERROR)


@router.register("workflow_run", action="completed")
async def on_workflow_run_completed(
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kwargs: Any
) -> None:
    run = event.data["workflow_run"]
    repository = event.data["repository"]
    project = f"{host}/{repository['full_name']}"
    has_downstreams = await engine.has_downstreams(project)
    ref_type, ref = await tags.ref_of(
        engine.sessions,
        gh,
        project,
        run.get("head_branch"),
        run.get("head_sha"),
        ask=has_downstreams,
        default_branch=repository.get("default_branch"),
    )
    finished = FinishedPipeline(
        project=project,
        sha=run.get("head_sha"),
        ref=ref,
        ref_type=ref_type,
        result=conclusion(run.get("conclusion")),
        pipeline=run.get("name"),
        run_id=str(run["id"]) if run.get("id") is not None else None,
        title=f"{run.get('display_title') or ''} {run.get('name') or ''}",
        url=run.get("html_url"),
        started_by=STARTED_BY.get(run.get("event") or "", "push"),
        attempt=int(run.get("run_attempt") or 1),
        workflow=PurePosixPath(run.get("path") or "").name or None,
        created_at=timestamp(run.get("created_at")),
    )
    if (
        gh is not None
        and finished.result is Result.SUCCESS
        and finished.run_id is not None
        and has_downstreams
    ):
        finished = replace(finished, artifacts=await run_artifacts(gh, finished.project, run))
    await engine.pipeline_finished(finished)
