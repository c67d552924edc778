"""`installation` and `installation_repositories`: repositories join and leave with the app."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from bot.engine import Engine

log = logging.getLogger(__name__)

router = routing.Router()


async def default_branch(gh: GitHubAPI | None, repository: dict[str, Any]) -> str:
    """Installation payloads list repositories without their default branch: ask for it."""
    if repository.get("default_branch"):
        return str(repository["default_branch"])
    if gh is None:
        return "main"
    owner, _, repo = repository["full_name"].partition("/")
    data = await gh.getitem("/repos/{owner}/{repo}", {"owner": owner, "repo": repo})
    return str(data["default_branch"])


async def index(
    engine: Engine,
    host: str,
    gh: GitHubAPI | None,
    repositories: Iterable[dict[str, Any]],
    installation_id: int,
) -> None:
    for repository in repositories:
        name = f"{host}/{repository['full_name']}"
        error = await engine.refresh_project(
            name,
            private=repository["private"],
            default_branch=await default_branch(gh, repository),
            installation_id=installation_id,
        )
        if error is not None:
            log.info("indexed %s with an invalid .conjunction.yml:\n%s", name, error)


async def drop(engine: Engine, names: Iterable[str]) -> None:
    for name in names:
        await engine.drop_project(name)


def names(host: str, repositories: Iterable[dict[str, Any]]) -> list[str]:
    return [f"{host}/{repository['full_name']}" for repository in repositories]


@router.register("installation", action="created")
@router.register("installation", action="unsuspend")
@router.register("installation", action="new_permissions_accepted")
async def on_installed(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: Engine, host: str, **kw: Any
) -> None:
    repositories = event.data.get("repositories")
    if repositories is None and gh is not None:
        repositories = [
            repository
            async for repository in gh.getiter(
                "/installation/repositories", iterable_key="repositories"
            )
        ]
    await index(engine, host, gh, repositories or [], event.data["installation"]["id"])


@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
async def on_uninstalled(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: Engine, host: str, **kw: Any
) -> None:
    repositories = event.data.get("repositories")
    if repositories is not None:
        await drop(engine, names(host, repositories))
    else:
        await drop(engine, await engine.installed_projects(event.data["installation"]["id"]))


@router.register("installation_repositories", action="added")
async def on_repositories_added(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: Engine, host: str, **kw: Any
) -> None:
    installation_id = event.data["installation"]["id"]
    await index(engine, host, gh, event.data["repositories_added"], installation_id)


@router.register("installation_repositories", action="removed")
async def on_repositories_removed(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: Engine, host: str, **kw: Any
) -> None:
    await drop(engine, names(host, event.data["repositories_removed"]))
