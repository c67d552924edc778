"""Authenticated gidgethub clients for the app's installations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from gidgethub.aiohttp import GitHubAPI

from bot.forges.github.auth import GitHubAppAuth
from bot.names import split_project


class InstallationClients:
    """Hands out a `GitHubAPI` acting as the app's installation on a project.

    Every client uses ``api_url`` as its base, so GitHub Enterprise Server works by
    setting ``GITHUB_API_URL``.
    """

    def __init__(
        self,
        auth: GitHubAppAuth,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        installation_lookup: Callable[[str], Awaitable[int | None]] | None = None,
        user_agent: str = "conjunction",
    ) -> None:
        self._auth = auth
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._installation_lookup = installation_lookup
        self._user_agent = user_agent

    def _client(self, token: str | None = None) -> GitHubAPI:
        return GitHubAPI(self._session, self._user_agent, oauth_token=token, base_url=self._api_url)

    def anonymous(self) -> GitHubAPI:
        """An unauthenticated client, for public repositories the app is not installed on."""
        return self._client()

    async def for_installation(self, installation_id: int) -> GitHubAPI:
        token = await self._auth.installation_token(self.anonymous(), installation_id)
        return self._client(token)

    async def for_project(self, project: str) -> GitHubAPI:
        """A client for `github.com/owner/repo`; LookupError when the app is not installed."""
        owner, _, repo = split_project(project)[1].partition("/")
        installation_id = None
        if self._installation_lookup is not None:
            installation_id = await self._installation_lookup(project)
        if installation_id is None:
            installation_id = await self._auth.installation_for_repo(self.anonymous(), owner, repo)
        if installation_id is None:
            raise LookupError(f"the Conjunction app is not installed on {owner}/{repo}")
        return await self.for_installation(installation_id)
