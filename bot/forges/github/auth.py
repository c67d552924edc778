"""Authentication as a GitHub App: app JWTs and cached installation tokens."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

import cachetools
import gidgethub
import jwt as pyjwt
from gidgethub.abc import GitHubAPI

log = logging.getLogger(__name__)

# A cached installation token is replaced once fewer than this many seconds remain.
TOKEN_REFRESH_MARGIN = 5 * 60


def parse_timestamp(value: str) -> float:
    """Epoch seconds of a GitHub ISO-8601 timestamp such as "2016-07-11T22:14:10Z"."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class GitHubAppAuth:
    """Signs app JWTs and hands out installation tokens, cached until close to expiry.

    All URLs are built from ``api_url``, so a GitHub Enterprise Server URL such as
    ``https://ghe.example.com/api/v3`` works as well as github.com.
    """

    def __init__(
        self,
        app_id: str,
        private_key: str,
        api_url: str = "https://api.github.com",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = str(app_id)
        self._private_key = private_key
        self.api_url = api_url.rstrip("/")
        self._clock = clock
        # installation id -> (token, expires_at as epoch seconds)
        self._tokens: cachetools.TTLCache[int, tuple[str, float]] = cachetools.TTLCache(
            maxsize=1024, ttl=3600, timer=clock
        )
        # (owner, repo) lowercased -> installation id
        self._repo_installations: cachetools.TTLCache[tuple[str, str], int] = cachetools.TTLCache(
            maxsize=1024, ttl=600, timer=clock
        )

    def __repr__(self) -> str:
        return f"GitHubAppAuth(app_id={self.app_id!r}, api_url={self.api_url!r})"

    def jwt(self) -> str:
        """A fresh RS256 app JWT, backdated 60 s for clock drift, valid under 10 minutes."""
        now = int(self._clock())
        claims = {"iat": now - 60, "exp": now + 540, "iss": self.app_id}
        return pyjwt.encode(claims, self._private_key, algorithm="RS256")

    async def installation_token(self, gh: GitHubAPI, installation_id: int) -> str:
        """A token for the installation, from cache unless it expires within 5 minutes."""
        cached = self._tokens.get(installation_id)
        if cached is not None and cached[1] - self._clock() > TOKEN_REFRESH_MARGIN:
            return cached[0]
        url = f"{self.api_url}/app/installations/{installation_id}/access_tokens"
        data = await gh.post(url, data=b"", jwt=self.jwt())
        token, expires_at = data["token"], parse_timestamp(data["expires_at"])
        self._tokens[installation_id] = (token, expires_at)
        log.debug("new token for installation %s, expires %s", installation_id, data["expires_at"])
        return token

    def forget(self, installation_id: int) -> None:
        """Drop what is cached for an installation (after a 401, or when it is removed)."""
        self._tokens.pop(installation_id, None)
        for key, value in list(self._repo_installations.items()):
            if value == installation_id:
                self._repo_installations.pop(key, None)

    async def installation_for_repo(self, gh: GitHubAPI, owner: str, repo: str) -> int | None:
        """The id of the app's installation on owner/repo, or None if it is not installed.

        Found installations are cached for 10 minutes; "not installed" is not cached, so
        a fresh installation is seen at once.
        """
        key = (owner.lower(), repo.lower())
        cached = self._repo_installations.get(key)
        if cached is not None:
            return cached
        try:
            data = await gh.getitem(
                self.api_url + "/repos/{owner}/{repo}/installation",
                {"owner": owner, "repo": repo},
                jwt=self.jwt(),
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            raise
        installation_id = int(data["id"])
        self._repo_installations[key] = installation_id
        return installation_id
