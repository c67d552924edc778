"""`installation` and `installation_repositories`: repositories join and leave with the app."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from conjunction.engine_api import EngineAPI
from conjunction.forges.github import installations

log = logging.getLogger(__name__)

router = routing.Router()


async def index(
    engine: EngineAPI, host: str, repositories: Iterable[dict[str, Any]], installation_id: int
) -> None:
    repositories = list(repositories)
    await installations.remember(engine.sessions, names(host, repositories), installation_id)
    for repository in repositories:
        name = f"{host}/{repository['full_name']}"
        # installation payloads list repositories without their default branch: the code
        # host is asked for it
        error = await engine.refresh_project(
            name,
            private=repository["private"],
            default_branch=repository.get("default_branch"),
        )
        if error is not None:
            log.info("indexed %s with an invalid .conjunction.yml:\n%s", name, error)


async def drop(engine: EngineAPI, names: Iterable[str]) -> None:
    names = list(names)
    for name in names:
        await engine.drop_project(name)
    await installations.forget(engine.sessions, names)


def names(host: str, repositories: Iterable[dict[str, Any]]) -> list[str]:
    return [f"{host}/{repository['full_name']}" for repository in repositories]


@router.register("installation", action="created")
@router.register("installation", action="unsuspend")
@router.register("installation", action="new_permissions_accepted")
async def on_installed(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    repositories = event.data.get("repositories")
    if repositories is None and gh is not None:
        repositories = [
            repository
            async for repository in gh.getiter(
                "/installation/repositories", iterable_key="repositories"
            )
        ]
    await index(engine, host, repositories or [], event.data["installation"]["id"])


@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
async def on_uninstalled(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    repositories = event.data.get("repositories")
    if repositories is not None:
        await drop(engine, names(host, repositories))
    else:
        installation = event.data["installation"]["id"]
        await drop(engine, await installations.projects_of(engine.sessions, installation))


@router.register("installation_repositories", action="added")
async def on_repositories_added(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    installation_id = event.data["installation"]["id"]
    await index(engine, host, event.data["repositories_added"], installation_id)


@router.register("installation_repositories", action="removed")
async def on_repositories_removed(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    await drop(engine, names(host, event.data["repositories_removed"]))
