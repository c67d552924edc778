"""Who subscribes to an upstream: the lookup every upstream success and pre-merge run makes.

One query through `ix_subscriptions_upstream`, each row joined to its project by primary key,
built once and read as plain rows in one call to the driver (`conjunction.engine.rows`); each
`upstreams:` entry is read from its JSON text by pydantic at once. Planning reads it through
the graph the process keeps (`conjunction.engine.graph`), until a config changes; a success
that starts nothing (`fanout.lone_success`) asks it directly: one statement either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.config.repo_config import Upstream
from conjunction.engine.rows import fetch_all
from conjunction.models import Project, Subscription


@dataclass(frozen=True)
class Candidate:
    """A downstream subscribed to the upstream, with its `upstreams:` entry."""

    key: str
    name: str
    spec: Upstream


SUBSCRIBERS = (
    select(Project.key, Project.name, cast(Subscription.spec, Text))
    .join(Project, Project.key == Subscription.downstream)
    .where(Subscription.upstream == bindparam("upstream"), Project.active.is_(True))
    .order_by(Subscription.id)
)


async def subscribers(session: AsyncSession, upstream_key: str) -> list[Candidate]:
    """The active downstreams subscribed to the upstream, in the order they subscribed."""
    rows = await fetch_all(session, SUBSCRIBERS, {"upstream": upstream_key})
    return [Candidate(key, name, Upstream.model_validate_json(spec)) for key, name, spec in rows]
