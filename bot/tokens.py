"""Callback tokens (derived, never stored) and project tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.models import KeyValue, ProjectToken, utcnow

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
        return hmac.compare_digest(self.token(event_id), token)

    def key_for(self, purpose: str) -> bytes:
        """A key of its own for another use of the secret key (callback tokens never match it)."""
        return hmac.new(self._key, f"key:{purpose}".encode(), hashlib.sha256).digest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_project_token(session: AsyncSession, project: str) -> str:
    """A new token for `project`; only its hash is kept, so it is shown once."""
    token = "cjp_" + secrets.token_urlsafe(32)
    session.add(ProjectToken(project=project, token_hash=_hash(token), prefix=token[:10]))
    return token


async def project_for_token(session: AsyncSession, token: str) -> str | None:
    """The project a live token belongs to (lookup by hash, so no timing leak on the secret)."""
    row = await session.scalar(
        select(ProjectToken).where(
            ProjectToken.token_hash == _hash(token), ProjectToken.revoked_at.is_(None)
        )
    )
    return row.project if row else None


async def list_project_tokens(session: AsyncSession, project: str) -> list[ProjectToken]:
    rows = await session.scalars(
        select(ProjectToken).where(ProjectToken.project == project).order_by(ProjectToken.id)
    )
    return list(rows)


async def revoke_project_tokens(session: AsyncSession, project: str) -> int:
    result = await session.execute(
        update(ProjectToken)
        .where(ProjectToken.project == project, ProjectToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
