"""Indexing projects: their `.conjunction.yml`, owners and upstream subscriptions."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from sqlalchemy import delete

from conjunction.config.codeowners import catch_all_owners
from conjunction.config.repo_config import ConfigError, ConjunctionConfig, parse_config
from conjunction.engine.context import Context
from conjunction.engine_api import CONFIG_PATH
from conjunction.models import Project, Subscription
from conjunction.names import project_key
from conjunction.queue import PermanentError

log = logging.getLogger(__name__)


async def refresh_project(
    ctx: Context,
    name: str,
    *,
    private: bool | None = None,
    default_branch: str | None = None,
    sha: str | None = None,
) -> ConfigError | None:
    """Read `.conjunction.yml` and CODEOWNERS from the default branch and index them.

    Visibility and default branch are asked of the code host when the caller does not know them.
    """
    host = ctx.adapters.host(name)
    if host is None:
        raise PermanentError(f"no code host is configured for {name}")
    if private is None or default_branch is None:
        info = await host.project_info(name)
        private = info.private if private is None else private
        default_branch = default_branch or info.default_branch
    config_text = await host.read_file(name, CONFIG_PATH, default_branch)
    codeowners = None
    for path in host.codeowners_paths:
        codeowners = await host.read_file(name, path, default_branch)
        if codeowners is not None:
            break
    return await index_project(
        ctx,
        name,
        private=private,
        default_branch=default_branch,
        config_text=config_text,
        codeowners_text=codeowners,
        sha=sha,
    )


async def index_project(
    ctx: Context,
    name: str,
    *,
    private: bool,
    default_branch: str,
    config_text: str | None,
    codeowners_text: str | None = None,
    sha: str | None = None,
) -> ConfigError | None:
    """Store a project and its upstream subscriptions; an invalid config keeps the last one."""
    config: ConjunctionConfig | None = None
    secrets = partial(ctx.secrets.problem, project=name)
    # owners as the project's forge spells them: "github", "gitlab", or None (either)
    forge = getattr(ctx.adapters.host(name), "owner_syntax", None)
    try:
        # bounded, but up to a fifth of a second for a large file: kept off the event loop
        config = (
            await asyncio.to_thread(parse_config, config_text, secrets=secrets, forge=forge)
            if config_text is not None
            else None
        )
    except ConfigError as error:
        await _keep_last_config(ctx, name, private, default_branch, error)
        return error
    key = project_key(name)
    async with ctx.sessions.begin() as session:
        project = _update(await session.get(Project, key), name, private, default_branch)
        session.add(project)
        project.config = config.model_dump(mode="json") if config else None
        project.config_sha = sha
        project.config_error = None
        project.owners = (
            list(config.owners)
            if config and config.owners is not None
            else catch_all_owners(codeowners_text or "")
        )
        await session.execute(delete(Subscription).where(Subscription.downstream == key))
        upstreams = config.upstreams if config else []
        session.add_all(
            Subscription(
                upstream=project_key(upstream.project),
                downstream=key,
                spec=upstream.model_dump(mode="json"),
            )
            for upstream in upstreams
        )
    log.info("indexed %s (%d upstreams)", name, len(upstreams))
    return None


async def _keep_last_config(
    ctx: Context, name: str, private: bool, default_branch: str, error: ConfigError
) -> None:
    async with ctx.sessions.begin() as session:
        project = _update(
            await session.get(Project, project_key(name)), name, private, default_branch
        )
        project.config_error = str(error)
        session.add(project)
    log.info("invalid %s in %s, keeping the last valid one", CONFIG_PATH, name)


def _update(project: Project | None, name: str, private: bool, default_branch: str) -> Project:
    project = project or Project(key=project_key(name))
    project.name = name
    project.private = private
    project.default_branch = default_branch
    project.active = True
    return project


async def drop_project(ctx: Context, name: str) -> None:
    """Forget a project's subscriptions (uninstalled or removed); its history stays."""
    key = project_key(name)
    async with ctx.sessions.begin() as session:
        await session.execute(delete(Subscription).where(Subscription.downstream == key))
        project = await session.get(Project, key)
        if project is not None:
            project.active = False


async def config_error_of(ctx: Context, name: str) -> str | None:
    """The problems of a project's current `.conjunction.yml`, if it is invalid."""
    async with ctx.sessions() as session:
        project = await session.get(Project, project_key(name))
    return project.config_error if project else None


async def config_pushed(
    ctx: Context, name: str, *, sha: str, private: bool, default_branch: str
) -> ConfigError | None:
    """A push changed the config or CODEOWNERS on the default branch: index it again, and show
    on the commit whether the config is valid (when it is invalid now, or was before)."""
    was_invalid = await config_error_of(ctx, name) is not None
    error = await refresh_project(
        ctx, name, private=private, default_branch=default_branch, sha=sha
    )
    host = ctx.adapters.host(name)
    if host is not None and (error is not None or was_invalid):
        await host.report_config(name, sha, error)
    return error
