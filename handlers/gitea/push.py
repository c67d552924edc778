"""`push` to the default branch that changes `.conjunction.yml` or CODEOWNERS: re-index.

A repository whose webhook was set up by hand joins this way, at its first such push.
"""

from __future__ import annotations

from typing import Any

from bot.engine import CONFIG_PATH, Engine
from bot.engine.indexing import config_pushed
from bot.forges.gitea.host import GiteaHost
from bot.models import Project
from bot.names import project_key

INDEXED_PATHS = {CONFIG_PATH, *GiteaHost.codeowners_paths}
NO_COMMIT = "0" * 40


def listed_paths(push: dict[str, Any]) -> set[str] | None:
    """Paths the push's commits list, or None when that is not all of them: Gitea lists only
    the last commits of a large push (`total_commits` counts them all), and older versions
    list no files."""
    commits = [commit for commit in push.get("commits") or [] if isinstance(commit, dict)]
    if len(commits) < (push.get("total_commits") or 0):
        return None
    changes = ("added", "modified", "removed")
    if any(not any(change in commit for change in changes) for commit in commits):
        return None
    return {path for commit in commits for change in changes for path in commit.get(change) or []}


async def on_push(push: dict[str, Any], *, engine: Engine, host: str) -> None:
    repository = push["repository"]
    path, default_branch = repository.get("full_name"), repository.get("default_branch")
    after = push.get("after") or NO_COMMIT
    if not path or not default_branch or after == NO_COMMIT:
        return  # a branch deleted
    if push.get("ref") != f"refs/heads/{default_branch}":
        return
    name = f"{host}/{path}"
    paths = listed_paths(push)
    if paths is None:
        paths = await _compared(engine, name, push.get("before") or NO_COMMIT, after)
    if paths is None:
        if not await _known(engine, name):
            return  # what changed is unknown: only repositories that joined are indexed again
    elif not paths & INDEXED_PATHS:
        return
    await config_pushed(
        engine,
        name,
        sha=after,
        private=bool(repository.get("private") or repository.get("internal")),
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
