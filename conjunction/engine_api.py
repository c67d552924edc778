"""What the engine offers forge drivers: the words they speak to it in and `EngineAPI`, the
methods they call. A driver (conjunction/forges/<forge>/, conjunction/web/<forge>/) imports this
module, never `conjunction.engine` itself (tests/test_drivers.py holds them to it);
`conjunction.engine.Engine` is the one implementation.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.adapters import Adapters
from conjunction.codehost import CommentRef
from conjunction.config.repo_config import ConfigError, ConjunctionConfig
from conjunction.models import Event, Project
from conjunction.results import Result
from conjunction.runner import Artifact
from conjunction.runs import Change, Origin, Via

CONFIG_PATH = ".conjunction.yml"  # where a project's config is, at the root of its default branch

EVENT_ID = re.compile(r"\b[0-9a-f]{32}\b")  # how an event id shows in a run's title or URL

# How a run started: a dispatch of Conjunction's (GitHub's two kinds, or a CI's own API), a
# push, a pull request, or a report that cannot say (a commit status, a check suite).
StartedBy = Literal[
    "workflow_dispatch", "repository_dispatch", "dispatch", "push", "pull_request", "unknown"
]


@dataclass(frozen=True)
class FinishedPipeline:
    """A pipeline that finished on a code host or CI system, in neutral terms."""

    project: str
    sha: str | None
    ref: str | None
    result: Result
    ref_type: str = Origin.BRANCH
    pipeline: str | None = None
    run_id: str | None = None
    title: str = ""  # text that may name the trigger event (run title, description, URL)
    url: str | None = None
    started_by: StartedBy = "unknown"
    artifacts: Sequence[Artifact] = ()
    # the CI's attempt of this run (GitHub `run_attempt`); None where the CI does not number
    # them, and a later different result of the same run is a re-run
    attempt: int | None = None
    workflow: str | None = None  # the workflow file that ran (GitHub), e.g. "conjunction.yml"
    created_at: datetime | None = None  # when the run was created, by the CI's clock


@dataclass(frozen=True)
class UpstreamSuccess:
    project: str
    sha: str | None
    ref: str | None
    ref_type: str = "branch"
    pipeline: str | None = None
    url: str | None = None
    changed_paths: Sequence[str] | None = None
    default_branch: str | None = None  # for upstreams Conjunction has not indexed
    artifacts: Sequence[Artifact] = ()  # what the build made, handed to every trigger
    via: Via = Via.FORGE
    # the CI's run and attempt, where the forge names them: the same run reported again (its
    # job retried after the database cut its answer off) records one build
    run: tuple[str, int | None] | None = None


@dataclass(frozen=True)
class CommentPosted:
    """A new comment on a pull or merge request or an issue, in neutral terms."""

    forge: str  # a driver's name: with the project and the comment's id, what makes it once
    delivery_id: str  # the delivery that brought it
    comment: CommentRef
    author: str  # the author's login
    body: str
    # whether the author may write to the repository, when the forge's handler can ask better
    # than `CodeHost.can_write(project, author)` (GitLab: by the user id the hook names)
    may_write: Callable[[], Awaitable[bool]] | None = None


class ResultConflict(Exception):
    """A different final result was already recorded for this event and attempt."""


def config_of(project: Project | None) -> ConjunctionConfig:
    """A project's indexed config; the defaults for a project not indexed."""
    if project is None or project.config is None:
        return ConjunctionConfig()
    return ConjunctionConfig.model_validate(project.config)


class EngineAPI(Protocol):
    """The engine as a driver's events and commands reach it."""

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def adapters(self) -> Adapters: ...

    async def refresh_project(self, name: str, **known: Any) -> ConfigError | None:
        """Index a project's config, owners and subscriptions again."""
        ...

    async def config_pushed(
        self, name: str, *, sha: str, private: bool, default_branch: str
    ) -> ConfigError | None:
        """A push changed the config or CODEOWNERS on the default branch."""
        ...

    async def drop_project(self, name: str) -> None: ...

    async def pipeline_finished(self, run: FinishedPipeline) -> Event | None:
        """A finished pipeline: a trigger's result, or an upstream success."""
        ...

    async def upstream_success(self, success: UpstreamSuccess) -> Event: ...

    async def record_result(self, event_id: str, result: Result | str, **values: Any) -> Event:
        """A trigger event's result; `ResultConflict` when another was recorded."""
        ...

    async def has_downstreams(self, project: str) -> bool: ...

    async def get_event(self, event_id: str) -> Event | None: ...

    async def change_updated(self, change: Change) -> object:
        """A pull or merge request opened, pushed to, reopened, closed or merged."""
        ...

    async def comment_posted(self, posted: CommentPosted) -> None:
        """A new comment, whose commands are acted on once."""
        ...
