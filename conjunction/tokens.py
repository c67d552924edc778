"""Callback tokens (derived, never stored) and project tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.models import KeyValue, ProjectToken, utcnow

SECRET_KEY_NAME = "secret_key"


async def ensure_secret_key(
    sessions: async_sessionmaker[AsyncSession], configured: str | None
) -> str:
    """The configured key, or the one generated on first start and kept in the database."""
    if configured:
        return configured
    async with sessions.begin() as session:
        stored = await session.get(KeyValue, SECRET_KEY_NAME)
        if stored is None:
            stored = KeyValue(key=SECRET_KEY_NAME, value=secrets.token_urlsafe(32))
            session.add(stored)
        return stored.value


class CallbackSigner:
    """The token a CI system presents to report the result of one trigger event."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def token(self, event_id: str) -> str:
        return hmac.new(self._key, f"callback:{event_id}".encode(), hashlib.sha256).hexdigest()

    def verify(self, event_id: str, token: str) -> bool:
        # compare_digest takes only ASCII text; a token that is not ASCII is simply wrong.
        return token.isascii() and hmac.compare_digest(self.token(event_id), token)

    def key_for(self, purpose: str) -> bytes:
        """A key of its own for another use of the secret key (callback tokens never match it)."""
        return hmac.new(self._key, f"key:{purpose}".encode(), hashlib.sha256).digest()


TOKEN_PREFIX = "cjp_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class TokenError(ValueError):
    """A token command that cannot be done; the message says why."""


def _hash(token: str) -> str:
    # surrogatepass: text from a header's undecodable bytes hashes (to no token) rather than raise
    return hashlib.sha256(token.encode(errors="surrogatepass")).hexdigest()


def _active(project: str) -> tuple[ColumnElement[bool], ...]:
    return ProjectToken.project == project, ProjectToken.revoked_at.is_(None)


async def default_token_name(session: AsyncSession, project: str) -> str:
    """`token-N`, N one more than the project's tokens so far, unless a live token has it."""
    taken = set(await session.scalars(select(ProjectToken.name).where(*_active(project))))
    number = len(await list_project_tokens(session, project)) + 1
    while f"token-{number}" in taken:
        number += 1
    return f"token-{number}"


async def create_project_token(session: AsyncSession, project: str, name: str | None = None) -> str:
    """A new token for `project`; only its hash is kept, so it is shown once. A project has
    several tokens, each with a name no other live token of the project has."""
    if name is None:
        name = await default_token_name(session, project)
    elif not _NAME.fullmatch(name):
        raise TokenError(
            f"{name!r} is not a token name: up to 100 letters, digits, '.', '_' and '-'"
        )
    elif await session.scalar(
        select(ProjectToken.id).where(*_active(project), ProjectToken.name == name)
    ):
        raise TokenError(f"{project} already has a token named {name}: revoke it or pick another")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ProjectToken(project=project, name=name, token_hash=_hash(token), prefix=token[:10])
    )
    return token


async def use_project_token(session: AsyncSession, token: str) -> str | None:
    """The project a live token belongs to, noting that it was used (looked up by hash, so
    there is no timing leak on the secret)."""
    row = await session.scalar(
        select(ProjectToken).where(
            ProjectToken.token_hash == _hash(token), ProjectToken.revoked_at.is_(None)
        )
    )
    if row is None:
        return None
    row.last_used_at = utcnow()
    return row.project


async def list_project_tokens(session: AsyncSession, project: str | None) -> list[ProjectToken]:
    """The tokens of one project (of every project for None), revoked ones included."""
    query = select(ProjectToken).order_by(ProjectToken.project, ProjectToken.id)
    if project is not None:
        query = query.where(ProjectToken.project == project)
    return list(await session.scalars(query))


async def revoke_project_token(session: AsyncSession, project: str, which: str) -> ProjectToken:
    """Revoke the one live token of `project` named `which`, or whose text starts with it (as
    `token list` shows it); the others stay valid."""
    live = list(await session.scalars(select(ProjectToken).where(*_active(project))))
    matches = [row for row in live if row.name == which]
    if not matches and which.startswith(TOKEN_PREFIX) and len(which) > len(TOKEN_PREFIX):
        matches = [row for row in live if row.prefix.startswith(which[:10])]
    if not matches:
        raise TokenError(f"{project} has no live token named or starting with {which!r}")
    if len(matches) > 1:
        names = ", ".join(row.name for row in matches)
        raise TokenError(f"{which!r} matches several tokens of {project} ({names}): name one")
    matches[0].revoked_at = utcnow()
    return matches[0]
