"""`workflow_run` completed: a GitHub Actions run finished."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import gidgethub
from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from bot.engine import Engine, FinishedPipeline
from bot.engine.results import StartedBy
from bot.names import split_project
from bot.results import Result
from bot.runner import Artifact

log = logging.getLogger(__name__)
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
        finished = replace(finished, artifacts=await run_artifacts(gh, finished, run))
    await engine.pipeline_finished(finished)


async def run_artifacts(
    gh: GitHubAPI, finished: FinishedPipeline, run: dict[str, Any]
) -> list[Artifact]:
    """The artifacts a successful run kept, for its downstreams (none when GitHub will not
    list them; a transient error retries the delivery)."""
    owner, _, repo = split_project(finished.project)[1].partition("/")
    try:
        listed = await gh.getitem(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts{?per_page}",
            {"owner": owner, "repo": repo, "run_id": finished.run_id, "per_page": 100},
        )
    except gidgethub.BadRequest as exc:
        log.info("no artifacts of %s run %s: %s", finished.project, finished.run_id, exc)
        return []
    page = run.get("html_url") or ""
    return [
        {
            "name": str(artifact["name"]),
            "id": artifact["id"],
            "run_id": finished.run_id,
            "repository": finished.project,
            **({"url": f"{page}/artifacts/{artifact['id']}"} if page else {}),
        }
        for artifact in listed.get("artifacts") or []
        if not artifact.get("expired")
    ]
