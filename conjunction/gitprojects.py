"""Projects on any git host: where each is read from, a code host
(`conjunction.forges.git.GitHost`) for
every host they are on, and a re-read whenever a build of theirs is reported.

A project joins with `python app.py project add GIT_URL`; its URL and the name of the secret it
is read with are stored in `git_projects`. Its CI takes part through `trigger.webhook` and the
builds and status API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.adapters import Adapters
from conjunction.config.repo_config import ConfigError
from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.forges.git import GitHost, GitRemote, SecretLookup, parse_git_url
from conjunction.models import GitProject
from conjunction.names import host_of, project_key
from conjunction.queue import JobQueue
from conjunction.secrets import SecretStore

REFRESH_JOB = "git_refresh"


def cache_dir(settings: Settings) -> Path:
    """Where the git cache repositories live: `.conjunction/git` next to the SQLite file, or in
    the working directory (with PostgreSQL, or an in-memory SQLite)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / ".conjunction" / "git"
    return Path(".conjunction", "git").resolve()


def remote_of(row: GitProject) -> GitRemote:
    # a stored URL was checked when it was added, file:// included
    return GitRemote(parse_git_url(row.url, allow_file=True), row.secret, row.private)


class GitProjects:
    """The stored git-hosted projects and their code hosts, one `GitHost` per host."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], secrets: SecretLookup, cache: Path
    ) -> None:
        self.sessions = sessions
        self._secrets = secrets
        self._cache = cache
        self._hosts: dict[str, GitHost] = {}
        self._adding: dict[str, GitRemote] = {}  # read before they are stored

    @classmethod
    def of(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession], secrets: SecretStore
    ) -> GitProjects:
        """Read with the secrets of CONJUNCTION_SECRETS_FILE, cached by `cache_dir`."""
        return cls(sessions, secrets.value, cache_dir(settings))

    async def remote(self, name: str) -> GitRemote | None:
        key = project_key(name)
        if key in self._adding:
            return self._adding[key]
        async with self.sessions() as session:
            row = await session.get(GitProject, key)
        return remote_of(row) if row is not None else None

    def code_host(self, host: str) -> GitHost:
        if host not in self._hosts:
            self._hosts[host] = GitHost(host, self.remote, self._secrets, self._cache)
        return self._hosts[host]

    async def register(self, adapters: Adapters) -> None:
        """Serve every host with git-hosted projects that no forge adapter serves."""
        for host in {host_of(row.name) for row in await self.stored()}:
            adapters.hosts.setdefault(host, self.code_host(host))

    async def stored(self) -> list[GitProject]:
        async with self.sessions() as session:
            return list(await session.scalars(select(GitProject).order_by(GitProject.key)))

    async def add(self, engine: Engine, name: str, remote: GitRemote) -> ConfigError | None:
        """Read and index a project, then store where it is read from. A git error (an
        unreachable URL, a refused secret) leaves nothing stored; an invalid config is stored
        with its problems, so that a fix is read on the next refresh."""
        key = project_key(name)
        self._adding[key] = remote
        engine.adapters.hosts.setdefault(host_of(name), self.code_host(host_of(name)))
        try:
            error = await engine.refresh_project(name)
        finally:
            del self._adding[key]
        async with self.sessions.begin() as session:
            await session.merge(
                GitProject(
                    key=key,
                    name=name,
                    url=remote.url.url,
                    secret=remote.secret,
                    private=remote.private,
                )
            )
        return error

    async def refresh_job(self, engine: Engine, payload: dict[str, Any]) -> None:
        """Job: read a git-hosted project's config again (after a build of it was reported)."""
        await self.register(engine.adapters)
        await engine.refresh_project(payload["project"])


async def queue_refresh(session: AsyncSession, project: str) -> None:
    """Queue a re-read of the project when it is git-hosted (a burst of builds reads it once)."""
    key = project_key(project)
    if await session.get(GitProject, key) is not None:
        await JobQueue.enqueue(
            session, REFRESH_JOB, {"project": project}, dedupe_key=f"{REFRESH_JOB}:{key}"
        )
