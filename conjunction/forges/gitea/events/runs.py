"""Finished Actions runs and commit statuses, in the engine's neutral terms.

- `workflow_run` (Gitea) and `action_run` (Forgejo): an Actions run finished. A run Conjunction
  dispatched is its trigger event's result (by the run id the dispatch answered with, the event
  id in the run's title, or as the one run of the dispatched workflow on the dispatched ref
  created since the dispatch); any other successful run is an upstream success of its branch.
- `status` (Gitea; Forgejo sends none): another CI's commit status (Woodpecker, Jenkins, …). It
  is a trigger's result only when it names the event (in its description or target URL); else
  a success is an upstream success only on the head of the default branch, the one branch a
  status can be placed on without asking more. Actions' own job statuses are left to the run
  events, which carry the whole run.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import replace
from typing import Any

from conjunction.engine_api import EVENT_ID, EngineAPI, FinishedPipeline, StartedBy
from conjunction.forges.gitea.host import GiteaHost, timestamp, workflow_file
from conjunction.models import Event
from conjunction.names import project_key
from conjunction.results import Result

log = logging.getLogger(__name__)

CONCLUSIONS = {
    "success": Result.SUCCESS,
    "failure": Result.FAILURE,
    "cancelled": Result.CANCELLED,
    "skipped": Result.SKIPPED,
    "neutral": Result.SUCCESS,
    "timed_out": Result.TIMED_OUT,
}
# Forgejo's run statuses once a run is done; every other (waiting, running, blocked) is not an end
RUN_STATUSES = {
    "success": Result.SUCCESS,
    "failure": Result.FAILURE,
    "cancelled": Result.CANCELLED,
    "skipped": Result.SKIPPED,
}
# a commit status's states; pending (and Gitea's warning) are not a result
STATES = {"success": Result.SUCCESS, "failure": Result.FAILURE, "error": Result.ERROR}
STARTED_BY: dict[str, StartedBy] = {
    "workflow_dispatch": "workflow_dispatch",
    "pull_request": "pull_request",
    "pull_request_target": "pull_request",
    "pull_request_sync": "pull_request",
}
OWN_CONTEXT = "conjunction/"


async def on_workflow_run(data: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    if data.get("action") != "completed":
        return
    run = data["workflow_run"]
    workflow = data.get("workflow") or {}
    await engine.pipeline_finished(
        FinishedPipeline(
            project=f"{host}/{data['repository']['full_name']}",
            sha=run.get("head_sha"),
            ref=run.get("head_branch"),
            result=CONCLUSIONS.get(run.get("conclusion") or "", Result.ERROR),
            pipeline=workflow.get("name"),
            run_id=str(run["id"]),
            title=f"{run.get('display_title') or ''} {workflow.get('name') or ''}",
            url=run.get("html_url"),
            started_by=STARTED_BY.get(run.get("event") or "", "push"),
            attempt=int(run.get("run_attempt") or 1),
            workflow=workflow_file(workflow.get("path")) or workflow_file(run.get("path")),
            # Gitea's run says when it started, which is after it was created
            created_at=timestamp(run.get("started_at")),
        )
    )


async def on_action_run(data: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    run = data["run"]
    result = RUN_STATUSES.get(run.get("status") or "")
    if result is None:
        return
    ref, ref_type = forgejo_ref(run)
    await engine.pipeline_finished(
        FinishedPipeline(
            project=f"{host}/{run['repository']['full_name']}",
            sha=run.get("commit_sha"),
            ref=ref,
            result=result,
            ref_type=ref_type,
            pipeline=run.get("workflow_id"),
            run_id=str(run["id"]),
            title=run.get("title") or "",
            url=run.get("html_url"),
            started_by=STARTED_BY.get(run.get("event") or "", "push"),
            workflow=workflow_file(run.get("workflow_id")),
            created_at=timestamp(run.get("created")),
        )
    )


def forgejo_ref(run: dict[str, Any]) -> tuple[str | None, str]:
    """The branch or tag of a Forgejo run: from the full ref of the event that started it (a
    push of a tag is `refs/tags/…`), else its short `prettyref`, taken for a branch."""
    with contextlib.suppress(ValueError, TypeError):
        ref = json.loads(run.get("event_payload") or "").get("ref")
        if isinstance(ref, str) and ref.startswith("refs/tags/"):
            return ref.removeprefix("refs/tags/"), "tag"
        if isinstance(ref, str) and ref.startswith("refs/heads/"):
            return ref.removeprefix("refs/heads/"), "branch"
    return run.get("prettyref"), "branch"


async def on_status(data: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    result = STATES.get(data.get("state") or "")
    context = data.get("context") or ""
    if result is None or context.startswith(OWN_CONTEXT):
        return
    repository = data["repository"]
    target = data.get("target_url") or ""
    if f"/{repository['full_name']}/actions/runs/".lower() in target.lower():
        return  # a job of an Actions run: the run's own event brings it
    name = f"{host}/{repository['full_name']}"
    run = FinishedPipeline(
        project=name,
        sha=data["sha"],
        ref=None,
        result=result,
        pipeline=context or None,
        title=f"{data.get('description') or ''} {target}",
        url=target or None,
        started_by="push",  # never the next dispatch's result unless it names the event
    )
    if await _named_trigger(engine, run) is not None:
        await engine.pipeline_finished(run)
        return
    default_branch = repository.get("default_branch")
    if result is not Result.SUCCESS or not default_branch:
        return
    gitea = engine.adapters.host(name)
    if (
        isinstance(gitea, GiteaHost)
        and await engine.has_downstreams(name)
        and await gitea.branch_head(name, default_branch) == run.sha
    ):
        await engine.pipeline_finished(replace(run, ref=default_branch))


async def _named_trigger(engine: EngineAPI, run: FinishedPipeline) -> Event | None:
    """The trigger event of this project that the run's title names, if any."""
    for event_id in EVENT_ID.findall(run.title):
        event = await engine.get_event(event_id)
        if (
            event is not None
            and event.kind == "trigger"
            and project_key(event.project) == project_key(run.project)
        ):
            return event
    return None
