"""`workflow_run` completed: a GitHub Actions run finished."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gidgethub import routing, sansio

from bot.engine import Engine, FinishedPipeline
from bot.engine.results import StartedBy
from bot.forges.github.artifacts import run_artifacts
from bot.results import Result

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
    "workflow_dispatch": "dispatch",
    "repository_dispatch": "dispatch",
    "pull_request": "pull_request",
    "pull_request_target": "pull_request",
}


def conclusion(value: str | None) -> Result:
    return CONCLUSIONS.get(value or "", Result.ERROR)


@router.register("workflow_run", action="completed")
async def on_workflow_run_completed(
    event: sansio.Event, gh: Any, *args: Any, engine: Engine, host: str, **kwargs: Any
) -> None:
    run = event.data["workflow_run"]
    finished = FinishedPipeline(
        project=f"{host}/{event.data['repository']['full_name']}",
        sha=run.get("head_sha"),
        ref=run.get("head_branch"),
        result=conclusion(run.get("conclusion")),
        pipeline=run.get("name"),
        run_id=str(run["id"]) if run.get("id") is not None else None,
        title=f"{run.get('display_title') or ''} {run.get('name') or ''}",
        url=run.get("html_url"),
        started_by=STARTED_BY.get(run.get("event") or "", "push"),
    )
    if (
        gh is not None
        and finished.result is Result.SUCCESS
        and finished.run_id is not None
        and await engine.has_downstreams(finished.project)
    ):
        finished = replace(finished, artifacts=await run_artifacts(gh, finished.project, run))
    await engine.pipeline_finished(finished)
