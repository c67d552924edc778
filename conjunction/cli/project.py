"""`conjunction project add|refresh|list`: projects on any git host (`conjunction.gitprojects`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from conjunction import forges, gitprojects
from conjunction.adapters import Adapters
from conjunction.bootstrap import opened
from conjunction.config.repo_config import ConfigError, ConjunctionConfig
from conjunction.config.settings import Settings
from conjunction.engine import CONFIG_PATH, Engine
from conjunction.forges.git import GitError, GitRemote, parse_git_url
from conjunction.models import Project
from conjunction.names import host_of, project_key, project_name
from conjunction.secrets import SecretStore


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add", help="register a repository by its git URL and read its .conjunction.yml"
    )
    add.add_argument(
        "url",
        metavar="GIT_URL",
        help="https://, http://, ssh:// (or USER@HOST:PATH), git://, or file:// with --allow-file",
    )
    add.add_argument(
        "--secret",
        metavar="NAME",
        help="read it with this secret of CONJUNCTION_SECRETS_FILE (https): USER:TOKEN is sent "
        "as HTTP Basic auth, a bare token as a Bearer token",
    )
    add.add_argument(
        "--name",
        metavar="PROJECT",
        help="its project name (default: the URL's host and path, e.g. git.acme.dev/tools/cli)",
    )
    visibility = add.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private",
        action="store_true",
        help="show it only to the admin (the default when it is read with credentials)",
    )
    visibility.add_argument(
        "--public", dest="private", action="store_false", help="show it to everyone"
    )
    add.set_defaults(private=None)
    add.add_argument(
        "--allow-file",
        action="store_true",
        help="allow a file:// URL (a repository on this machine)",
    )
    refresh = actions.add_parser("refresh", help="read a git-hosted project's config again")
    refresh.add_argument("project", help="e.g. git.acme.dev/tools/cli")
    actions.add_parser("list", help="the git-hosted projects and where they are read from")


def _forge_of(settings: Settings, host: str) -> str | None:
    """How a repository on `host` joins, where a configured forge serves it."""
    for driver in forges.DRIVERS:
        forge = settings.forge(driver.settings)
        if forge.enabled and host == forge.host:
            return driver.joined_by
    return None


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(manage_projects(settings, args))


async def manage_projects(settings: Settings, args: argparse.Namespace) -> int:
    adding = None
    if args.action == "add":
        try:
            adding = git_remote(settings, args)
        except (ValueError, LookupError) as exc:
            print(f"conjunction: {exc}", file=sys.stderr)
            return 2
    async with opened(settings) as base:
        projects = gitprojects.GitProjects.of(
            settings, base.sessions, SecretStore(settings.secrets_file)
        )
        if args.action == "list":
            await list_git_projects(projects)
            return 0
        engine = await base.engine(Adapters())
        if adding is not None:
            return await add_git_project(engine, projects, *adding)
        return await refresh_git_project(engine, projects, args.project)


def git_remote(settings: Settings, args: argparse.Namespace) -> tuple[str, GitRemote]:
    """The name and remote `project add` was given; ValueError or LookupError saying what is
    wrong with them."""
    url = parse_git_url(args.url, allow_file=args.allow_file)
    name = project_name(args.name) if args.name else url.project
    if name is None:
        raise ValueError("a file:// URL names no host: give the project's name with --name")
    forge = _forge_of(settings, host_of(name))
    if forge is not None:
        raise ValueError(f"{host_of(name)} is served by {forge}, not read through git")
    private = args.secret is not None or url.scheme == "ssh"  # read with credentials
    remote = GitRemote(url, args.secret, private if args.private is None else args.private)
    if args.secret is not None:
        SecretStore(settings.secrets_file).value(args.secret, name)
    return name, remote


async def add_git_project(
    engine: Engine, projects: gitprojects.GitProjects, name: str, remote: GitRemote
) -> int:
    try:
        error = await projects.add(engine, name, remote)
    except GitError as exc:
        print(f"conjunction: cannot read {remote.url.url}: {exc}", file=sys.stderr)
        return 1
    print(f"added {name}, read from {remote.url.url}")
    return await _print_indexed(engine, name, error)


async def refresh_git_project(engine: Engine, projects: gitprojects.GitProjects, name: str) -> int:
    if await projects.remote(name) is None:
        print(f"conjunction: {name} is not a git-hosted project (project list)", file=sys.stderr)
        return 2
    await projects.register(engine.adapters)
    try:
        error = await engine.refresh_project(name)
    except GitError as exc:
        print(f"conjunction: cannot read {name}: {exc}", file=sys.stderr)
        return 1
    return await _print_indexed(engine, name, error)


async def _print_indexed(engine: Engine, name: str, error: ConfigError | None) -> int:
    """What indexing found: branch, upstreams, owners, trigger; or the config's problems."""
    async with engine.sessions() as session:
        project = await session.get(Project, project_key(name))
    assert project is not None  # indexing stored it
    visibility = "private" if project.private else "public"
    print(f"{project.name}: default branch {project.default_branch}, {visibility}")
    if error is not None:
        for problem in error.problems:
            print(f"{project.name}: {CONFIG_PATH}: {problem}", file=sys.stderr)
        kept = "the last valid one stays in force" if project.config else "nothing is indexed"
        print(
            f"{CONFIG_PATH} is invalid: {kept} until a fixed one is read "
            f"(python app.py project refresh {project.name})",
            file=sys.stderr,
        )
        return 1
    if project.config is None:
        print(f"no {CONFIG_PATH}: it takes part as an upstream only")
    config = ConjunctionConfig.model_validate(project.config or {})
    print("upstreams: " + (", ".join(u.project for u in config.upstreams) or "none"))
    print("owners: " + (", ".join(project.owners) or "none"))
    if config.trigger.webhook is not None:
        print(f"trigger: webhook {config.trigger.webhook.url}")
    elif config.upstreams:
        print("trigger: none; add trigger.webhook so that its upstreams can start its CI")
    print(f"report its own builds with a project token: python app.py token create {name}")
    return 0


async def list_git_projects(projects: gitprojects.GitProjects) -> None:
    rows = await projects.stored()
    if not rows:
        print("no git-hosted projects (python app.py project add GIT_URL)")
        return
    async with projects.sessions() as session:
        indexed = {row.key: await session.get(Project, row.key) for row in rows}
    width = max(len(row.name) for row in rows)
    for row in rows:
        details = [
            f"secret {row.secret}" if row.secret else "no secret",
            "private" if row.private else "public",
            f"config {_config_state(indexed[row.key])}",
        ]
        print(f"{row.name.ljust(width)}  {row.url}  ({', '.join(details)})")


def _config_state(project: Project | None) -> str:
    if project is None:
        return "not read"
    if project.config_error:
        return "invalid"
    return "ok" if project.config is not None else "none"
