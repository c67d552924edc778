"""`Push Hook` to the default branch that changes `.conjunction.yml` or CODEOWNERS: re-index.

A project whose webhook was set up by hand joins this way, at its first such push.
"""

from __future__ import annotations

from typing import Any

from bot.engine import CONFIG_PATH, Engine
from bot.engine.indexing import config_pushed
from bot.forges.gitlab.host import GitLabHost
from bot.models import Project
from bot.names import project_key

INDEXED_PATHS = {CONFIG_PATH, *GitLabHost.codeowners_paths}
PUBLIC = 20  # GitLab's visibility_level of a public project (10 internal, 0 private)
NO_COMMIT = "0" * 40


def listed_paths(push: dict[str, Any]) -> set[str] | None:
    """Paths the push's commits list, or None when that is not all of them: GitLab lists at
    most 20 commits of a push, and a System Hook's commits list no files."""
    commits = [commit for commit in push.get("commits") or [] if isinstance(commit, dict)]
    if len(commits) < (push.get("total_commits_count") or 0):
        return None
    changes = ("added", "modified", "removed")
    if any(not any(change in commit for change in changes) for commit in commits):
        return None
    return {path for commit in commits for change in changes for path in commit.get(change) or []}


async def on_push(push: dict[str, Any], *, engine: Engine, host: str, **_: Any) -> None:
    project = push.get("project") or {}
    path, default_branch = project.get("path_with_namespace"), project.get("default_branch")
    after = push.get("after") or NO_COMMIT
    if not path or not default_branch or after == NO_COMMIT:
        return  # a branch deleted, or not a project's push
    if push.get("ref") != f"refs/heads/{default_branch}":
        return
    name = f"{host}/{path}"
    paths = listed_paths(push)
    if paths is None:
        paths = await _compared(engine, name, push.get("before") or NO_COMMIT, after)
    if paths is None:
        if not await _known(engine, name):
            return  # what changed is unknown: only projects that joined are indexed again
    elif not paths & INDEXED_PATHS:
        return
    await config_pushed(
        engine,
        name,
        sha=after,
        private=project.get("visibility_level") != PUBLIC,
        default_branch=default_branch,
    )


async def _compared(engine: Engine, name: str, before: str, after: str) -> set[str] | None:
    code_host = engine.adapters.host(name)
    if code_host is None or before == NO_COMMIT:
        return None
    changed = await code_host.changed_files(name, before, after)
    return set(changed) if changed is not None else None


async def _known(engine: Engine, name: str) -> bool:
    async with engine.sessions() as session:
        project = await session.get(Project, project_key(name))
    return project is not None and project.active
