"""`push` to the default branch that changes `.conjunction.yml` or CODEOWNERS: re-index.

A repository whose webhook was set up by hand joins this way, at its first such push.
"""

from __future__ import annotations

from typing import Any

from conjunction.engine_api import CONFIG_PATH, EngineAPI
from conjunction.forges.gitea.host import GiteaHost
from conjunction.web import pushes
from conjunction.web.pushes import NO_COMMIT

INDEXED_PATHS = {CONFIG_PATH, *GiteaHost.codeowners_paths}


def listed_paths(push: dict[str, Any]) -> set[str] | None:
    """Paths the push's commits list, or None when that is not all of them: Gitea lists only
    the last commits of a large push (`total_commits` counts them all), and older versions
    list no files."""
    return pushes.listed_paths(push, push.get("total_commits") or 0)


async def on_push(push: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    repository = push["repository"]
    path, default_branch = repository.get("full_name"), repository.get("default_branch")
    after = push.get("after") or NO_COMMIT
    if not path or not default_branch or after == NO_COMMIT:
        return  # a branch deleted
    if push.get("ref") != f"refs/heads/{default_branch}":
        return
    await pushes.reindex_if_touched(
        engine,
        f"{host}/{path}",
        listed_paths(push),
        INDEXED_PATHS,
        before=push.get("before") or NO_COMMIT,
        after=after,
        private=bool(repository.get("private") or repository.get("internal")),
        default_branch=default_branch,
    )
