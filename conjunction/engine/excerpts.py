"""The `excerpt` job: why a failing downstream run failed, fetched once and stored on its event
(`Event.excerpt`) for its page, its row of the report, its issue and its pre-merge comment.

The lines come from the CI's own `metadata.summary` when it sent one, else from the runner that
ran it (`conjunction.excerpts.FailureLogs`: GitHub Actions, GitLab CI, Gitea Actions), which
answers None when its forge refuses or fails (an excerpt is worth one try): the result stays as
it is, without an excerpt, and the job still finishes and queues the follow-ups that waited for
it (the changes and the issue, so the issue shows the excerpt).
"""

from __future__ import annotations

from typing import Any

from conjunction.engine import followups
from conjunction.engine.context import Context, config_of
from conjunction.excerpts import Excerpt, FailureLogs, FailureText, Source, cut
from conjunction.models import Event, Project
from conjunction.names import project_key
from conjunction.results import Result


async def fetch_excerpt(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: the failing run's excerpt stored (once) and its report updated; then the
    follow-ups it held back (`changes`, `issues`: event ids)."""
    async with ctx.sessions() as session:
        event = await session.get(Event, payload["event_id"])
        downstream = await session.get(Project, project_key(event.project)) if event else None
    excerpt = None
    try:
        if event is not None and event.excerpt is None and Result(str(event.result)).broken:
            excerpt = await _excerpt(ctx, event, downstream)
    finally:  # whatever came of it, the issue is not held back
        async with ctx.sessions.begin() as session:
            if excerpt is not None and event is not None:
                stored = await session.get(Event, event.id, with_for_update=True)
                if stored is not None:
                    stored.excerpt = excerpt.stored()
                    await followups.reports(session, stored)
            if payload.get("changes"):
                await followups.changes(session, payload["changes"])
            if payload.get("issues"):
                await followups.issues(session, payload["issues"])


async def _excerpt(ctx: Context, event: Event, downstream: Project | None) -> Excerpt | None:
    metadata = event.ci_metadata or {}
    found: FailureText | None = None
    if metadata.get("summary"):
        found = FailureText(Source.CI, str(metadata["summary"]), metadata.get("log_url"))
    elif event.run_id is not None and downstream is not None:
        runner = ctx.adapters.runner(downstream.name, config_of(downstream).trigger)
        if not isinstance(runner, FailureLogs):
            return None
        found = await runner.failure_text(downstream.name, event.run_id)
    return cut(found, event.result) if found is not None else None
