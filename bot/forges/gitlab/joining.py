"""Joining GitLab projects: `python app.py gitlab add GROUP/PROJECT` (or `GROUP`, for every
project of the group and its subgroups).

For each project: say which role the bot account lacks for what, create or update the one
project webhook pointing at Conjunction (never a second one), and index `.conjunction.yml` and
CODEOWNERS from the default branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gitlab import GitlabError

from bot.engine import Engine
from bot.forges.gitlab.host import GitLabHost, message_of
from bot.models import Project
from bot.names import project_key

REPORTER, DEVELOPER, MAINTAINER = 20, 30, 40  # GitLab's access levels
# Tag pipelines arrive as Pipeline Hooks and the note on a merge request is found through the
# commit, so pushes and pipelines are all Conjunction needs to hear about.
HOOK_EVENTS = {
    "push_events": True,
    "pipeline_events": True,
    "tag_push_events": False,
    "merge_requests_events": False,
    "issues_events": False,
    "note_events": False,
    "job_events": False,
    "wiki_page_events": False,
    "enable_ssl_verification": True,
}


class JoinError(Exception):
    """The path names nothing the bot account can see."""


@dataclass
class Joined:
    name: str
    done: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{self.name}: {'; '.join(self.done)}", *(f"  ! {line}" for line in self.missing)]


class Joiner:
    def __init__(self, host: GitLabHost, engine: Engine, hook_url: str, secret: str) -> None:
        self.host = host
        self.client = host.client
        self.engine = engine
        self.hook_url = hook_url
        self.secret = secret
        self._user_id: int | None = None

    async def paths(self, path: str) -> list[str]:
        """The project at path, or every project of the group at path."""
        gl = self.client.gl
        try:
            project = await self.client.run(gl.projects.get, path)
            return [str(project.path_with_namespace)]
        except GitlabError as exc:
            if exc.response_code != 404:
                raise
        try:
            group = await self.client.run(gl.groups.get, path)
        except GitlabError as exc:
            if exc.response_code != 404:
                raise
            raise JoinError(
                f"{path} is neither a project nor a group the bot account can see "
                f"on {self.host.host}"
            ) from None
        projects = await self.client.run(
            group.projects.list, include_subgroups=True, archived=False, get_all=True
        )
        return sorted(str(project.path_with_namespace) for project in projects)

    async def add(self, path: str) -> Joined:
        name = f"{self.host.host}/{path}"
        joined = Joined(name)
        info = await self.host.project_info(name)
        level = await self._access_level(path)
        if level < DEVELOPER:
            joined.missing.append(
                "the bot account lacks the Developer role: Conjunction cannot create this "
                "project's pipelines (as a downstream) or post commit statuses on it "
                "(as an upstream)"
            )
        if level < REPORTER and info.private:
            joined.missing.append(
                "the bot account lacks the Reporter role: it cannot read this project's files"
            )
        await self._hook(path, joined)
        await self._index(name, info.private, info.default_branch, joined)
        return joined

    async def _access_level(self, path: str) -> int:
        """The bot's role in the project, inherited from groups included."""
        if self._user_id is None:
            await self.client.run(self.client.gl.auth)
            assert self.client.gl.user is not None
            self._user_id = int(self.client.gl.user.id)
        members = self.client.project(path).members_all
        try:
            member = await self.client.run(members.get, self._user_id)
        except GitlabError as exc:
            if exc.response_code == 404:
                return 0  # not a member: a public project can still be read
            raise
        return int(member.access_level)

    async def _hook(self, path: str, joined: Joined) -> None:
        hooks = self.client.project(path).hooks
        data = {"url": self.hook_url, "token": self.secret, **HOOK_EVENTS}
        try:
            listed = await self.client.run(hooks.list, get_all=True)
            ours = [hook for hook in listed if hook.url == self.hook_url]
            if ours:
                await self.client.run(hooks.update, ours[0].id, data)
                for duplicate in ours[1:]:
                    await self.client.run(hooks.delete, duplicate.id)
                joined.done.append("webhook updated")
            else:
                await self.client.run(hooks.create, data)
                joined.done.append("webhook created")
        except GitlabError as exc:
            if exc.response_code not in (401, 403, 422):
                raise
            reason = (
                "the bot account lacks the Maintainer role, which managing webhooks needs"
                if exc.response_code == 403
                else f"GitLab refused it: {message_of(exc)}"
            )
            joined.missing.append(
                f"no webhook: {reason}. Add one by hand (Settings > Webhooks): URL "
                f"{self.hook_url}, the secret token GITLAB_WEBHOOK_SECRET, push events and "
                "pipeline events"
            )

    async def _index(self, name: str, private: bool, default_branch: str, joined: Joined) -> None:
        error = await self.engine.refresh_project(
            name, private=private, default_branch=default_branch
        )
        if error is not None:
            joined.missing.append(f"invalid .conjunction.yml on {default_branch}:")
            joined.missing.extend(f"    {problem}" for problem in error.problems)
            return
        async with self.engine.sessions() as session:
            project = await session.get(Project, project_key(name))
        config = project.config if project is not None else None
        if config is None:
            joined.done.append(f"indexed (no .conjunction.yml on {default_branch}: an upstream)")
        else:
            count = len(config.get("upstreams") or [])
            joined.done.append(f"indexed ({count} upstream{'s' if count != 1 else ''})")


async def add_projects(joiner: Joiner, path: str, out: Callable[[str], None] = print) -> int:
    """`gitlab add`: join the project at path, or each project of the group at path, printing
    one progress line per project; 0 when each joined with nothing missing."""
    try:
        paths = await joiner.paths(path.strip("/"))
    except JoinError as exc:
        out(f"conjunction: {exc}")
        return 1
    if not paths:
        out(f"conjunction: the group {path} has no projects the bot account can see")
        return 1
    complete = True
    for number, project in enumerate(paths, start=1):
        prefix = f"[{number}/{len(paths)}] " if len(paths) > 1 else ""
        try:
            joined = await joiner.add(project)
        except GitlabError as exc:
            out(f"{prefix}{joiner.host.host}/{project}: failed: {message_of(exc)}")
            complete = False
            continue
        first, *rest = joined.lines()
        out(prefix + first)
        for line in rest:
            out(line)
        complete = complete and not joined.missing
    return 0 if complete else 1
