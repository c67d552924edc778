"""`check_suite` completed and `status`: results of CI systems that report outside Actions."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot.engine import Engine, UpstreamSuccess
from bot.forge import STATUS_CONTEXT
from bot.models import Event
from handlers.github.workflow_run import CONCLUSIONS, named_in, record_build

router = routing.Router()

STATES = {"success": "success", "failure": "failure", "error": "error"}
ACTIONS_APP = "github-actions"  # its suites arrive as workflow_run too
OWN_APP_PREFIX = "Conjunction"


async def correlate(engine: Engine, project: str, text: str) -> Event | None:
    """The trigger event a report answers: named by id in text, else the oldest not started."""
    pending = await engine.pending_triggers(project)
    named = named_in(pending, text)
    if named is not None:
        return named
    return next((event for event in pending if event.run_id is None), None)


@router.register("check_suite", action="completed")
async def on_check_suite_completed(
    event: sansio.Event, gh: Any, *args: Any, engine: Engine, host: str, **kwargs: Any
) -> None:
    suite = event.data["check_suite"]
    app = suite.get("app") or {}
    if app.get("slug") == ACTIONS_APP or (app.get("name") or "").startswith(OWN_APP_PREFIX):
        return
    repository = event.data["repository"]
    build = UpstreamSuccess(
        project=f"{host}/{repository['full_name']}",
        sha=suite.get("head_sha"),
        ref=suite.get("head_branch"),
        pipeline=app.get("name"),
        url=f"{repository['html_url']}/commit/{suite.get('head_sha')}/checks",
    )
    commit = suite.get("head_commit") or {}
    text = f"{suite.get('head_branch') or ''} {commit.get('message') or ''}"
    trigger = await correlate(engine, build.project, text)
    result = CONCLUSIONS.get(suite.get("conclusion") or "", "error")
    await record_build(engine, trigger, result, build)


@router.register("status")
async def on_status(
    event: sansio.Event, gh: Any, *args: Any, engine: Engine, host: str, **kwargs: Any
) -> None:
    status = event.data
    result = STATES.get(status.get("state") or "")
    if result is None or status.get("context") == STATUS_CONTEXT:
        return
    branches = status.get("branches") or []
    build = UpstreamSuccess(
        project=f"{host}/{status['repository']['full_name']}",
        sha=status.get("sha"),
        ref=branches[0]["name"] if branches else None,
        pipeline=status.get("context"),
        url=status.get("target_url"),
    )
    text = f"{status.get('description') or ''} {status.get('target_url') or ''}"
    trigger = await correlate(engine, build.project, text)
    await record_build(engine, trigger, result, build)
