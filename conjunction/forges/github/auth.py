"""The app's credentials: installation tokens from `gidgethub.apps`, cached, and where it is
installed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import cachetools
import gidgethub
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from gidgethub.abc import GitHubAPI
from gidgethub.apps import get_jwt

log = logging.getLogger(__name__)

# A cached installation token is replaced once fewer than this many seconds remain.
TOKEN_REFRESH_MARGIN = 5 * 60
REPO_INSTALLATION_TTL = 10 * 60
# The app's own JWT (valid 10 minutes) is signed again after this many seconds.
APP_JWT_TTL = 5 * 60


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
        # parsed once: reading a PEM key checks it, which takes long enough (~0.2 s on a
        # small machine) to hold the event loop back at every token
        self._signing_key = load_pem_private_key(private_key.encode(), password=None)
        self._app_jwt: cachetools.TTLCache[str, str] = cachetools.TTLCache(
            maxsize=1, ttl=APP_JWT_TTL, timer=clock
        )
        self._fetching: dict[int, asyncio.Lock] = {}
        self._tokens: cachetools.TLRUCache[int, Token] = cachetools.TLRUCache(
            maxsize=1024, ttu=_usable_until, timer=clock
        )
        # (owner, repo) lowercased -> installation id
        self._repo_installations: cachetools.TTLCache[tuple[str, str], int] = cachetools.TTLCache(
            maxsize=1024, ttl=REPO_INSTALLATION_TTL, timer=clock
        )

    def __repr__(self) -> str:
        return f"GitHubAppAuth(app_id={self.app_id!r})"

    def app_jwt(self) -> str:
        """The app's JWT, signed again every 5 minutes."""
        token = self._app_jwt.get(self.app_id)
        if token is None:
            # gidgethub types the key as PEM text; PyJWT takes the parsed key as well
            key: str = self._signing_key  # type: ignore[assignment]
            token = self._app_jwt[self.app_id] = get_jwt(app_id=self.app_id, private_key=key)
        return token

    async def installation_token(self, gh: GitHubAPI, installation_id: int) -> str:
        """A token for the installation, from cache unless it expires within 5 minutes;
        jobs asking for the same one at once share one request."""
        lock = self._fetching.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached is not None:
                return cached.value
            data = await gh.post(
                "/app/installations/{installation_id}/access_tokens",
                {"installation_id": installation_id},
                data=b"",
                jwt=self.app_jwt(),
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
