"""The artifacts a GitHub Actions run kept, as they travel with its downstreams' triggers."""

from __future__ import annotations

import logging
from typing import Any

import gidgethub
from gidgethub.abc import GitHubAPI

from conjunction.names import split_project
from conjunction.runner import Artifact

log = logging.getLogger(__name__)


async def run_artifacts(gh: GitHubAPI, project: str, run: dict[str, Any]) -> list[Artifact]:
    """The unexpired artifacts of a run (`GET /repos/{owner}/{repo}/actions/runs/{run_id}/
    artifacts`): name, id, run id, repository and the run page's link to each. None when
    GitHub will not list them; a transient error is raised (the caller tries again)."""
    owner, _, repo = split_project(project)[1].partition("/")
    run_id = str(run["id"])
    try:
        listed = await gh.getitem(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts{?per_page}",
            {"owner": owner, "repo": repo, "run_id": run_id, "per_page": 100},
        )
    except gidgethub.BadRequest as exc:
        log.info("no artifacts of %s run %s: %s", project, run_id, exc)
        return []
    page = run.get("html_url") or ""
    return [
        {
            "name": str(artifact["name"]),
            "id": artifact["id"],
            "run_id": run_id,
            "repository": project,
            **({"url": f"{page}/artifacts/{artifact['id']}"} if page else {}),
        }
        for artifact in listed.get("artifacts") or []
        if not artifact.get("expired")
    ]
