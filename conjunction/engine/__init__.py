"""The engine: what happens when an upstream succeeds and when a downstream's result comes back.

One module per concern — `indexing` (configs), `fanout` (a success's fan-out and a failure's
fallout, loaded and written), `planning` (what they start, skip, leave waiting or supersede:
pure), `chains` (where a chain stands, what a diamond waits for: pure), `dispatch` (starting
them, a batch a job), `matching` (which trigger a finished pipeline answers), `results` (its
result recorded, its snapshot loaded and decided by `conjunction.verdicts`), `effects` (a decision
carried out: the verdict, a confirming re-run, the follow-up jobs), `followups` (those jobs,
deduplicated), `changes` (what changed since a pair last passed), `reports` (the aggregate on the
upstream commit), `issues` (breakage issues), `notify` (telling a pair's channels), `bisects`
(culprit searches), `premerge` (a change run against its downstreams, CONTRACT §8), `timeouts`,
`commands` (commands in comments: acknowledged, checked, carried out), `excerpts` (why a failing run
failed, fetched once), `claims` (a run claiming the trigger that started it) — each deciding in
pure functions and acting through the code host and runner interfaces (`conjunction.codehost`,
`conjunction.runner`). `Engine` gathers them for handlers and jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from conjunction.config.repo_config import ConfigError
from conjunction.engine import (
    bisects,
    changes,
    claims,
    commands,
    dispatch,
    excerpts,
    fanout,
    followups,
    indexing,
    issues,
    notify,
    premerge,
    reports,
    results,
    timeouts,
)
from conjunction.engine.context import Context, UnknownEvent
from conjunction.engine.premerge import PremergeStarted
from conjunction.engine_api import (
    CONFIG_PATH,
    CommentPosted,
    FinishedPipeline,
    ResultConflict,
    UpstreamSuccess,
)
from conjunction.models import Event
from conjunction.queue import JobHandler
from conjunction.results import Result
from conjunction.runner import TriggerRequest
from conjunction.runs import Change

__all__ = [
    "CONFIG_PATH",
    "CommentPosted",
    "Engine",
    "FinishedPipeline",
    "PremergeStarted",
    "ResultConflict",
    "UnknownEvent",
    "UpstreamSuccess",
]


class Engine(Context):
    async def refresh_project(self, name: str, **known: Any) -> ConfigError | None:
        return await indexing.refresh_project(self, name, **known)

    async def index_project(self, name: str, **values: Any) -> ConfigError | None:
        return await indexing.index_project(self, name, **values)

    async def config_pushed(
        self, name: str, *, sha: str, private: bool, default_branch: str
    ) -> ConfigError | None:
        return await indexing.config_pushed(
            self, name, sha=sha, private=private, default_branch=default_branch
        )

    async def drop_project(self, name: str) -> None:
        await indexing.drop_project(self, name)

    async def config_error_of(self, name: str) -> str | None:
        return await indexing.config_error_of(self, name)

    async def pipeline_finished(self, run: FinishedPipeline) -> Event | None:
        return await results.pipeline_finished(self, run)

    async def upstream_success(self, success: UpstreamSuccess) -> Event:
        return await fanout.upstream_success(self, success)

    async def record_build(self, build: UpstreamSuccess, result: Result) -> Event:
        return await fanout.record_build(self, build, result)

    async def record_result(self, event_id: str, result: Result | str, **values: Any) -> Event:
        return await results.record_result(self, event_id, result, **values)

    async def premerge(
        self,
        change: Change,
        *,
        only: Sequence[str] = (),
        retry: bool = False,
        commanded: bool = False,
    ) -> PremergeStarted:
        """Pre-merge runs of the change's head (CONTRACT §8); `reason` says why none started."""
        return await premerge.premerge(self, change, only=only, retry=retry, commanded=commanded)

    async def change_updated(self, change: Change) -> PremergeStarted:
        """A change opened, pushed to, reopened, closed or merged (the forges' hooks)."""
        return await premerge.change_updated(self, change)

    async def comment_posted(self, posted: CommentPosted) -> None:
        """The commands of a new comment (`/conjunction …`), acted on once."""
        await commands.comment_posted(self, posted, self)

    async def has_downstreams(self, project: str) -> bool:
        async with self.sessions() as session:
            return await followups.has_downstreams(session, project)

    async def pending_triggers(self, project: str) -> list[Event]:
        return await results.pending_triggers(self, project)

    async def get_event(self, event_id: str) -> Event | None:
        async with self.sessions() as session:
            return await session.get(Event, event_id)

    async def bisect(self, upstream: str, downstream: str, requested_by: str | None) -> str:
        """Find the upstream commit that broke a pair (CONTRACT §10, `/conjunction bisect`):
        starts a culprit search of its newest new regression; returns a sentence for a reply."""
        return await bisects.request(self, upstream, downstream, requested_by)

    async def bisects_in_progress(self) -> list[bisects.Progress]:
        return await bisects.in_progress(self.sessions)

    async def claim(self, project: str, claimant: str) -> TriggerRequest | None:
        """The trigger a run of `project` claims (`trigger.webhook.claim`), as its runner would
        be sent it; None when none awaits a claim."""
        return await claims.claim(self, project, claimant)

    async def expire_overdue(self) -> int:
        return await timeouts.expire_overdue(self)

    def job_handlers(self) -> dict[str, JobHandler]:
        return {
            "trigger": partial(dispatch.start_trigger, self),
            "claim_restart": partial(claims.start_again, self),
            "report": partial(reports.post_report, self),
            "premerge_report": partial(premerge.post_report, self),
            "issues": partial(issues.update_issues, self),
            "chain": partial(results.continue_chain, self),
            "changes": partial(changes.record_changes, self),
            "notify": partial(notify.notify, self),
            "notify_send": partial(notify.send, self),
            "bisect": partial(bisects.start_job, self),
            "culprit": partial(issues.post_culprit, self),
            "excerpt": partial(excerpts.fetch_excerpt, self),
        }
