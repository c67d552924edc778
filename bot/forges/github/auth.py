"""The app's credentials: installation tokens from `gidgethub.apps`, cached, and where it is
installed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import cachetools
import gidgethub
from gidgethub.abc import GitHubAPI
from gidgethub.apps import get_installation_access_token

log = logging.getLogger(__name__)

# A cached installation token is replaced once fewer than this many seconds remain.
TOKEN_REFRESH_MARGIN = 5 * 60
REPO_INSTALLATION_TTL = 10 * 60


def parse_timestamp(value: str) -> float:
    """Epoch seconds of a GitHub ISO-8601 timestamp such as "2016-07-11T22:14:10Z"."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Token(NamedTuple):
    value: str
    expires_at: float  # epoch seconds


def _usable_until(_installation: int, token: Token, _now: float) -> float:
    return token.expires_at - TOKEN_REFRESH_MARGIN


class GitHubAppAuth:
    """The app's id and private key, its installation tokens (cached until 5 minutes before
    they expire) and the installations found for repositories (cached for 10 minutes).

    The `gh` given to each call must authenticate as the app (`GitHubClients.app()`); its
    base URL decides between github.com and an Enterprise Server.
    """

    def __init__(
        self, app_id: str, private_key: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.app_id = str(app_id)
        self.private_key = private_key
        self._tokens: cachetools.TLRUCache[int, Token] = cachetools.TLRUCache(
            maxsize=1024, ttu=_usable_until, timer=clock
        )
        # (owner, repo) lowercased -> installation id
        self._repo_installations: cachetools.TTLCache[tuple[str, str], int] = cachetools.TTLCache(
            maxsize=1024, ttl=REPO_INSTALLATION_TTL, timer=clock
        )

    def __repr__(self) -> str:
        return f"GitHubAppAuth(app_id={self.app_id!r})"

    async def installation_token(self, gh: GitHubAPI, installation_id: int) -> str:
        """A token for the installation, from cache unless it expires within 5 minutes."""
        cached = self._tokens.get(installation_id)
        if cached is not None:
            return cached.value
        data = await get_installation_access_token(
            gh,
            installation_id=str(installation_id),
            app_id=self.app_id,
            private_key=self.private_key,
        )
        token = Token(data["token"], parse_timestamp(data["expires_at"]))
        self._tokens[installation_id] = token
        log.debug("new token for installation %s, expires %s", installation_id, data["expires_at"])
        return token.value

    def forget(self, installation_id: int) -> None:
        """Drop what is cached for an installation (after a 401, or when it is removed)."""
        self._tokens.pop(installation_id, None)
        for key, value in list(self._repo_installations.items()):
            if value == installation_id:
                self._repo_installations.pop(key, None)

    async def installation_for_repo(self, gh: GitHubAPI, owner: str, repo: str) -> int | None:
        """The id of the app's installation on owner/repo, or None if it is not installed.

        "Not installed" is not cached, so a fresh installation is seen at once.
        """
        key = (owner.lower(), repo.lower())
        cached = self._repo_installations.get(key)
        if cached is not None:
            return cached
        try:
            data = await gh.getitem(
                "/repos/{owner}/{repo}/installation", {"owner": owner, "repo": repo}
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            raise
        installation_id = int(data["id"])
        self._repo_installations[key] = installation_id
        return installation_id
