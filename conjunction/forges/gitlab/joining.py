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

from conjunction.config.repo_config import ConjunctionConfig
from conjunction.engine_api import EngineAPI, config_of
from conjunction.forges.gitlab.host import TRANSIENT, GitLabHost, message_of, refuses_token
from conjunction.models import Project
from conjunction.names import project_key

REPORTER, DEVELOPER, MAINTAINER = 20, 30, 40  # GitLab's access levels
# Tag pipelines arrive as Pipeline Hooks and the note on a merge request is found through the
# commit; comments carry commands (`/conjunction test`, CONTRACT §9) and merge requests start
# pre-merge runs (§8).
HOOK_EVENTS = {
    "push_events": True,
    "pipeline_events": True,
    "tag_push_events": False,
    "merge_requests_events": True,
    "issues_events": False,
    "note_events": True,
    "job_events": False,
    "wiki_page_events": False,
    "enable_ssl_verification": True,
}


TOKEN_REFUSED = "GitLab refused GITLAB_TOKEN (revoked, expired, or without the api scope)"


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
    def __init__(self, host: GitLabHost, engine: EngineAPI, hook_url: str, secret: str) -> None:
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
        # only the group's own projects: one shared into it from elsewhere is not the group's
        projects = await self.client.run(
            group.projects.list,
            include_subgroups=True,
            archived=False,
            with_shared=False,
            get_all=True,
        )
        return sorted(str(project.path_with_namespace) for project in projects)

    async def add(self, path: str) -> Joined:
        name = f"{self.host.host}/{path}"
        joined = Joined(name)
        info = await self.host.project_info(name)
        level = await self._access_level(path)
        await self._hook(path, joined)
        config = await self._index(name, info.private, info.default_branch, joined)
        joined.missing[:0] = roles_missing(level, info.private, info.default_branch, config)
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
            if exc.response_code not in (401, 403, 422) or refuses_token(exc):
                raise
            reason = (
                "the bot account lacks the Maintainer role, which managing webhooks needs"
                if exc.response_code == 403
                else f"GitLab refused it: {message_of(exc)}"
            )
            joined.missing.append(
                f"no webhook: {reason}. Add one by hand (Settings > Webhooks): URL "
                f"{self.hook_url}, the secret token GITLAB_WEBHOOK_SECRET, push, pipeline, "
                "comment and merge request events"
            )

    async def _index(
        self, name: str, private: bool, default_branch: str, joined: Joined
    ) -> ConjunctionConfig | None:
        """Index the project; its valid config (None when it has no valid one)."""
        error = await self.engine.refresh_project(
            name, private=private, default_branch=default_branch
        )
        if error is not None:
            joined.missing.append(f"invalid .conjunction.yml on {default_branch}:")
            joined.missing.extend(f"    {problem}" for problem in error.problems)
            return None
        async with self.engine.sessions() as session:
            project = await session.get(Project, project_key(name))
        if project is None or project.config is None:
            joined.done.append(f"indexed (no .conjunction.yml on {default_branch}: an upstream)")
            return None
        config = config_of(project)
        count = len(config.upstreams)
        joined.done.append(f"indexed ({count} upstream{'s' if count != 1 else ''})")
        return config


def roles_missing(
    level: int, private: bool, default_branch: str, config: ConjunctionConfig | None
) -> list[str]:
    """What the bot's role in a project keeps Conjunction from doing there.

    Commit statuses (as an upstream) take the Developer role. Creating pipelines (as a
    downstream) takes Developer too, and on a protected branch — a default branch is protected
    unless someone changed it — a role allowed to merge into it: Maintainer by default."""
    missing = []
    if level < DEVELOPER:
        missing.append(
            "the bot account lacks the Developer role: Conjunction cannot post commit statuses "
            "on this project (as an upstream) or create its pipelines (as a downstream; on a "
            "protected branch that takes a role allowed to merge into it, Maintainer by default)"
        )
    elif (
        level < MAINTAINER
        and config is not None
        and config.upstreams
        and config.trigger.webhook is None  # else a trigger token creates its pipelines
    ):
        ref = config.trigger.ref or default_branch
        missing.append(
            f"the bot account has the Developer role: if {ref} is a protected branch (a "
            "default branch is, by default), creating pipelines on it needs a role allowed "
            f"to merge into {ref}: Maintainer, unless Developers are allowed to merge"
        )
    if level < REPORTER and private:
        missing.append(
            "the bot account lacks the Reporter role: it cannot read this project's files"
        )
    return missing


async def add_projects(joiner: Joiner, path: str, out: Callable[[str], None] = print) -> int:
    """`gitlab add`: join the project at path, or each project of the group at path, printing
    one progress line per project; 0 when each joined with nothing missing. A token GitLab
    refuses stops it with one line saying so."""
    try:
        paths = await joiner.paths(path.strip("/"))
    except JoinError as exc:
        out(f"conjunction: {exc}")
        return 1
    except GitlabError as exc:
        refused = TOKEN_REFUSED if refuses_token(exc) else f"GitLab refused: {message_of(exc)}"
        out(f"conjunction: {refused}")
        return 1
    except TRANSIENT as exc:
        out(f"conjunction: cannot reach GitLab at {joiner.client.gl.url} ({exc})")
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
            if refuses_token(exc):
                out(f"conjunction: {TOKEN_REFUSED}")
                return 1
            out(f"{prefix}{joiner.host.host}/{project}: failed: {message_of(exc)}")
            complete = False
            continue
        except TRANSIENT as exc:
            out(f"{prefix}{joiner.host.host}/{project}: failed: GitLab out of reach ({exc})")
            complete = False
            continue
        first, *rest = joined.lines()
        out(prefix + first)
        for line in rest:
            out(line)
        complete = complete and not joined.missing
    return 0 if complete else 1
