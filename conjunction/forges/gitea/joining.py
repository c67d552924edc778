"""Joining Gitea and Forgejo repositories: `python app.py gitea add OWNER/REPO` (or `OWNER`, for
every repository of an organization or user that is not archived).

For each repository: say what the bot account may not do there, create or update the one
repository webhook pointing at Conjunction (found by its URL, never a second one), and index
`.conjunction.yml` and CODEOWNERS from the default branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from conjunction.config.repo_config import ConjunctionConfig
from conjunction.engine_api import EngineAPI, config_of
from conjunction.forges.gitea.client import TRANSIENT, GiteaError
from conjunction.forges.gitea.host import GiteaHost
from conjunction.models import Project
from conjunction.names import project_key

# Gitea sends pushes, commit statuses and Actions runs (`workflow_run`); Forgejo pushes and
# Actions runs (`action_run_*`). Each ignores the names it does not know, so one list serves
# both. `pull_request` stands for every pull request event, its comments among them;
# `issue_comment` adds the comments on issues (commands on breakage issues).
HOOK_EVENTS = [
    "push",
    "status",
    "workflow_run",
    "action_run_success",
    "action_run_failure",
    "action_run_recover",
    "pull_request",
    "issue_comment",
]
HOOK_TYPE = "gitea"  # Forgejo takes it too
TOKEN_REFUSED = "{host} refused GITEA_TOKEN (revoked or expired)"


class JoinError(Exception):
    """The path names nothing the bot account can see."""


@dataclass
class Joined:
    name: str
    done: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{self.name}: {'; '.join(self.done)}", *(f"  ! {line}" for line in self.missing)]


def hook_body(url: str, secret: str) -> dict[str, Any]:
    return {
        "type": HOOK_TYPE,
        "config": {"url": url, "content_type": "json", "http_method": "post", "secret": secret},
        "events": HOOK_EVENTS,
        "active": True,
    }


class Joiner:
    def __init__(self, host: GiteaHost, engine: EngineAPI, hook_url: str, secret: str) -> None:
        self.host = host
        self.client = host.client
        self.engine = engine
        self.hook_url = hook_url
        self.secret = secret

    async def check_token(self) -> None:
        """GET /user: a token the server refuses raises GiteaError(401)."""
        await self.client.get("/user")

    async def paths(self, path: str) -> list[str]:
        """The repository at `owner/repo`, or every repository of the organization or user."""
        if "/" in path:
            repo = await self._get_or_none(f"/repos/{quote(path, safe='/')}")
            if repo is None:
                raise JoinError(
                    f"{path} is no repository the bot account can see on {self.host.host}"
                )
            return [str(repo["full_name"])]
        owner = quote(path)
        repos = await self._pages_or_none(f"/orgs/{owner}/repos")
        if repos is None:
            repos = await self._pages_or_none(f"/users/{owner}/repos")
        if repos is None:
            raise JoinError(
                f"{path} is neither an organization nor a user the bot account can see on "
                f"{self.host.host}"
            )
        return sorted(str(repo["full_name"]) for repo in repos if not repo.get("archived"))

    async def _get_or_none(self, path: str) -> Any:
        try:
            return await self.client.get(path)
        except GiteaError as exc:
            if exc.status == 404:
                return None
            raise

    async def _pages_or_none(self, path: str) -> list[Any] | None:
        try:
            return await self.client.pages(path)
        except GiteaError as exc:
            if exc.status == 404:
                return None
            raise

    async def add(self, path: str) -> Joined:
        name = f"{self.host.host}/{path}"
        joined = Joined(name)
        repo = await self.client.get(f"/repos/{quote(path, safe='/')}")
        private = bool(repo.get("private") or repo.get("internal"))
        default_branch = repo.get("default_branch") or "main"
        permissions = repo.get("permissions") or {}
        await self._hook(path, joined)
        config = await self._index(name, private, default_branch, joined)
        joined.missing[:0] = permissions_missing(permissions, config)
        return joined

    async def _hook(self, path: str, joined: Joined) -> None:
        hooks_path = f"/repos/{quote(path, safe='/')}/hooks"
        body = hook_body(self.hook_url, self.secret)
        try:
            listed = await self.client.pages(hooks_path)
            ours = [
                hook for hook in listed if (hook.get("config") or {}).get("url") == self.hook_url
            ]
            if ours:
                update = {key: body[key] for key in ("config", "events", "active")}
                await self.client.request("PATCH", f"{hooks_path}/{ours[0]['id']}", body=update)
                for duplicate in ours[1:]:
                    await self.client.request("DELETE", f"{hooks_path}/{duplicate['id']}")
                joined.done.append("webhook updated")
            else:
                await self.client.request("POST", hooks_path, body=body)
                joined.done.append("webhook created")
        except GiteaError as exc:
            if exc.status not in (403, 404, 422):
                raise
            reason = (
                "the bot account is no administrator of the repository, which managing "
                "webhooks needs"
                if exc.status in (403, 404)
                else f"{self.host.host} refused it: {exc.message}"
            )
            joined.missing.append(
                f"no webhook: {reason}. Add one by hand (Settings > Webhooks > Add webhook > "
                f"Gitea or Forgejo): target URL {self.hook_url}, content type application/json, "
                "the secret GITEA_WEBHOOK_SECRET, and the events Push, Status and Workflow run "
                "(Gitea) or Push and Action run (Forgejo), Pull request, Pull request "
                "synchronized, Pull request comment and Issue comment"
            )

    async def _index(
        self, name: str, private: bool, default_branch: str, joined: Joined
    ) -> ConjunctionConfig | None:
        """Index the repository; its valid config (None when it has no valid one)."""
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


def permissions_missing(permissions: dict[str, Any], config: ConjunctionConfig | None) -> list[str]:
    """What the bot account's access to a repository keeps Conjunction from doing there.

    Commit statuses (as an upstream) and starting workflows (as a downstream) take write
    access; issues take read access where issues are open to everyone."""
    if permissions.get("push") or permissions.get("admin"):
        return []
    starts = config is not None and config.upstreams and config.trigger.webhook is None
    return [
        "the bot account has no write access: Conjunction cannot post commit statuses on this "
        "repository (as an upstream)"
        + (" or start its workflows (as a downstream)" if starts else "")
        + "; add it as a collaborator with write access"
    ]


async def add_repositories(joiner: Joiner, path: str, out: Callable[[str], None] = print) -> int:
    """`gitea add`: join the repository at path, or each repository of the owner at path,
    printing one progress line per repository; 0 when each joined with nothing missing. A token
    the server refuses stops it with one line saying so."""
    host = joiner.host.host
    try:
        await joiner.check_token()
        paths = await joiner.paths(path.strip("/"))
    except JoinError as exc:
        out(f"conjunction: {exc}")
        return 1
    except GiteaError as exc:
        refused = (
            TOKEN_REFUSED.format(host=host)
            if exc.status == 401
            else f"{host} refused: {exc.message}"
        )
        out(f"conjunction: {refused}")
        return 1
    except TRANSIENT as exc:
        out(f"conjunction: cannot reach {joiner.client.url} ({exc})")
        return 1
    if not paths:
        out(f"conjunction: {path} has no repositories the bot account can see")
        return 1
    complete = True
    for number, repo in enumerate(paths, start=1):
        prefix = f"[{number}/{len(paths)}] " if len(paths) > 1 else ""
        try:
            joined = await joiner.add(repo)
        except GiteaError as exc:
            if exc.status == 401:
                out(f"conjunction: {TOKEN_REFUSED.format(host=host)}")
                return 1
            out(f"{prefix}{host}/{repo}: failed: {exc.message}")
            complete = False
            continue
        except TRANSIENT as exc:
            out(f"{prefix}{host}/{repo}: failed: {host} out of reach ({exc})")
            complete = False
            continue
        first, *rest = joined.lines()
        out(prefix + first)
        for line in rest:
            out(line)
        complete = complete and not joined.missing
    return 0 if complete else 1
