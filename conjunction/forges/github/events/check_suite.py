"""`check_suite` completed and `status`: results of CI systems that report outside Actions."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from conjunction.codehost import STATUS_CONTEXT
from conjunction.engine_api import EngineAPI, FinishedPipeline
from conjunction.forges.github import tags
from conjunction.forges.github.events.workflow_run import conclusion
from conjunction.results import Result

router = routing.Router()

STATES = {"success": Result.SUCCESS, "failure": Result.FAILURE, "error": Result.ERROR}
ACTIONS_APP = "github-actions"  # its suites arrive as workflow_run too
OWN_APP_PREFIX = "Conjunction"


@router.register("check_suite", action="completed")
async def on_check_suite_completed(
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kwargs: Any
) -> None:
    suite = event.data["check_suite"]
    app = suite.get("app") or {}
    if app.get("slug") == ACTIONS_APP or (app.get("name") or "").startswith(OWN_APP_PREFIX):
        return
    repository = event.data["repository"]
    commit = suite.get("head_commit") or {}
    project = f"{host}/{repository['full_name']}"
    ref_type, ref = await tags.ref_of(
        engine.sessions, gh, project, suite.get("head_branch"), suite.get("head_sha"), ask=False
    )
    await engine.pipeline_finished(
        FinishedPipeline(
            project=project,
            sha=suite.get("head_sha"),
            ref=ref,
            ref_type=ref_type,
            result=conclusion(suite.get("conclusion")),
            pipeline=app.get("name"),
            title=f"{suite.get('head_branch') or ''} {commit.get('message') or ''}",
            url=f"{repository['html_url']}/commit/{suite.get('head_sha')}/checks",
        )
    )


@router.register("status")
async def on_status(
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kwargs: Any
) -> None:
    status = event.data
    result = STATES.get(status.get("state") or "")
    if result is None or status.get("context") == STATUS_CONTEXT:
        return
    branches = status.get("branches") or []
    project = f"{host}/{status['repository']['full_name']}"
    ref_type, ref = await tags.ref_of(
        engine.sessions,
        gh,
        project,
        branches[0]["name"] if branches else None,
        status.get("sha"),
        ask=False,
    )
    await engine.pipeline_finished(
        FinishedPipeline(
            project=project,
            sha=status.get("sha"),
            ref=ref,
            ref_type=ref_type,
            result=result,
            pipeline=status.get("context"),
            title=f"{status.get('description') or ''} {status.get('target_url') or ''}",
            url=status.get("target_url"),
        )
    )
