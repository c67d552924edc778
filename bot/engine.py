"""What happens when an upstream succeeds, and when a downstream's result comes back.

The engine knows projects, events and the queue; forges are reached only through `bot.forge.Forge`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics, texts
from bot.forge import Forge, PipelineStarted, TriggerError, TriggerRequest, project_key
from bot.models import Event, IssueLink, Project, Subscription, utcnow
from bot.queue import JobHandler, JobQueue, PermanentError
from bot.report import FAILED, PASSED, Row, aggregate, display_name
from bot.tokens import CallbackSigner
from config.codeowners import catch_all_owners
from config.repo_config import ConfigError, ConjunctionConfig, Upstream, parse_config
from config.settings import Settings

log = logging.getLogger(__name__)

BROKEN = {"failure", "error"}
RUNNING = "running"
CONFIG_PATH = ".conjunction.yml"
CODEOWNERS_PATHS = ("CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")


class UnknownEvent(LookupError):
    pass


class ResultConflict(Exception):
    """A different final result was already recorded for this event."""


def new_event_id() -> str:
    return uuid.uuid4().hex


def config_of(project: Project | None) -> ConjunctionConfig:
    if project is None or project.config is None:
        return ConjunctionConfig()
    return ConjunctionConfig.model_validate(project.config)


def classify(previous: str | None, current: str) -> str | None:
    """How a result compares with the same downstream's result for the previous upstream success."""
    if previous is None or current not in PASSED | FAILED:
        return None
    if previous in PASSED and current in BROKEN:
        return "broke"
    if previous in FAILED and current in PASSED:
        return "improved"
    return "same"


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


class Engine:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        forges: Mapping[str, Forge],
        settings: Settings,
        signer: CallbackSigner,
    ) -> None:
        self.sessions = sessions
        self.forges = forges
        self.settings = settings
        self.signer = signer

    def forge(self, project: str) -> Forge | None:
        return self.forges.get(project.split("/", 1)[0].lower())

    def event_url(self, event_id: str) -> str:
        return f"{self.settings.public_url}/events/{event_id}"

    def callback_url(self, event_id: str) -> str:
        return f"{self.settings.public_url}/api/v1/events/{event_id}/status"

    # -- projects and their configs -------------------------------------------------------

    async def refresh_project(
        self,
        name: str,
        *,
        private: bool,
        default_branch: str,
        sha: str | None = None,
        installation_id: int | None = None,
    ) -> ConfigError | None:
        """Read `.conjunction.yml` and CODEOWNERS from the default branch and index them."""
        forge = self.forge(name)
        if forge is None:
            raise PermanentError(f"no forge is configured for {name}")
        config_text = await forge.read_file(name, CONFIG_PATH, default_branch)
        codeowners = None
        for path in CODEOWNERS_PATHS:
            codeowners = await forge.read_file(name, path, default_branch)
            if codeowners is not None:
                break
        return await self.index_project(
            name,
            private=private,
            default_branch=default_branch,
            config_text=config_text,
            codeowners_text=codeowners,
            sha=sha,
            installation_id=installation_id,
        )

    async def index_project(
        self,
        name: str,
        *,
        private: bool,
        default_branch: str,
        config_text: str | None,
        codeowners_text: str | None = None,
        sha: str | None = None,
        installation_id: int | None = None,
    ) -> ConfigError | None:
        """Store a project and its upstream subscriptions; an invalid config keeps the last one."""
        config: ConjunctionConfig | None = None
        error: ConfigError | None = None
        if config_text is not None:
            try:
                config = parse_config(config_text)
            except ConfigError as exc:
                error = exc
        key = project_key(name)
        async with self.sessions.begin() as session:
            project = await session.get(Project, key) or Project(key=key)
            project.name = name
            project.private = private
            project.default_branch = default_branch
            project.active = True
            if installation_id is not None:
                project.installation_id = installation_id
            session.add(project)
            if error is not None:
                project.config_error = str(error)
                log.info("invalid %s in %s, keeping the last valid one", CONFIG_PATH, name)
                return error
            project.config = config.model_dump(mode="json") if config else None
            project.config_sha = sha
            project.config_error = None
            project.owners = (
                list(config.owners)
                if config and config.owners is not None
                else catch_all_owners(codeowners_text or "")
            )
            await session.execute(delete(Subscription).where(Subscription.downstream == key))
            for upstream in config.upstreams if config else []:
                session.add(
                    Subscription(
                        upstream=project_key(upstream.project),
                        downstream=key,
                        spec=upstream.model_dump(mode="json"),
                    )
                )
        log.info("indexed %s (%d upstreams)", name, len(config.upstreams) if config else 0)
        return None

    async def drop_project(self, name: str) -> None:
        """Forget a project's subscriptions (uninstalled or removed); its history stays."""
        key = project_key(name)
        async with self.sessions.begin() as session:
            await session.execute(delete(Subscription).where(Subscription.downstream == key))
            project = await session.get(Project, key)
            if project is not None:
                project.active = False

    async def config_error_of(self, name: str) -> str | None:
        """The problems of a project's current `.conjunction.yml`, if it is invalid."""
        async with self.sessions() as session:
            project = await session.get(Project, project_key(name))
        return project.config_error if project else None

    async def installed_projects(self, installation_id: int) -> list[str]:
        """Active projects indexed for one GitHub App installation."""
        async with self.sessions() as session:
            names = await session.scalars(
                select(Project.name).where(
                    Project.installation_id == installation_id, Project.active.is_(True)
                )
            )
            return list(names)

    # -- upstream success -> trigger events ----------------------------------------------

    async def upstream_success(
        self, success: UpstreamSuccess, *, parent_id: str | None = None
    ) -> Event:
        """Record an upstream success and create one trigger event per matching downstream.

        With parent_id, the success is a downstream's own result continuing a chain.
        """
        if parent_id is None and success.changed_paths is None:
            success = await self._with_changed_paths(success)
        async with self.sessions.begin() as session:
            if parent_id is not None:
                source = await session.get(Event, parent_id)
                if source is None:
                    raise UnknownEvent(parent_id)
            else:
                source = self._build_event(session, success, "success")
            children = await self._fan_out(session, source, success)
            if children:
                await JobQueue.enqueue(
                    session, "report", {"event_id": source.id}, dedupe_key=f"report:{source.id}"
                )
        log.info(
            "upstream success of %s at %s: %d downstream(s)",
            success.project,
            success.sha,
            len(children),
            extra={"event_id": source.id},
        )
        return source

    async def _with_changed_paths(self, success: UpstreamSuccess) -> UpstreamSuccess:
        """Ask the forge what changed since the previous success, when a subscriber filters
        on `paths`; unknown changes let every subscriber through."""
        async with self.sessions() as session:
            specs = await session.scalars(
                select(Subscription.spec).where(
                    Subscription.upstream == project_key(success.project)
                )
            )
            if success.sha is None or not any(spec.get("paths") for spec in specs):
                return success
            base = await session.scalar(
                select(Event.sha)
                .where(
                    Event.kind == "build",
                    Event.project == success.project,
                    Event.ref == success.ref,
                    Event.result == "success",
                    Event.sha != success.sha,
                )
                .order_by(Event.created_at.desc())
                .limit(1)
            )
        forge = self.forge(success.project)
        if base is None or forge is None:
            return success
        changed = await forge.changed_files(success.project, base, success.sha)
        return success if changed is None else replace(success, changed_paths=changed)

    @staticmethod
    def _build_event(session: AsyncSession, success: UpstreamSuccess, result: str) -> Event:
        event_id = new_event_id()
        event = Event(
            id=event_id,
            kind="build",
            project=success.project,
            root_id=event_id,
            sha=success.sha,
            ref=success.ref,
            ref_type=success.ref_type,
            pipeline=success.pipeline,
            url=success.url,
            result=result,
            depth=0,
            details={"chain": [project_key(success.project)]},
            finished_at=utcnow(),
        )
        session.add(event)
        return event

    async def record_build(self, build: UpstreamSuccess, result: str) -> Event:
        """A build reported through the API: a success fans out, anything else is only kept."""
        if result == "success":
            return await self.upstream_success(build)
        async with self.sessions.begin() as session:
            return self._build_event(session, build, result)

    async def _fan_out(
        self, session: AsyncSession, source: Event, success: UpstreamSuccess
    ) -> list[Event]:
        key = project_key(success.project)
        upstream_project = await session.get(Project, key)
        default_branch = (
            upstream_project.default_branch
            if upstream_project
            else success.default_branch or "main"
        )
        subscriptions = await session.scalars(
            select(Subscription).where(Subscription.upstream == key).order_by(Subscription.id)
        )
        chain: list[str] = list(source.details.get("chain", [key]))
        already = await self._triggered_for(session, success)
        ref = success.ref or default_branch  # a downstream run that did not say ran the default
        children = []
        for subscription in subscriptions:
            spec = Upstream.model_validate(subscription.spec)
            if not (
                spec.watches_ref(success.ref_type, ref, default_branch)  # type: ignore[arg-type]
                and spec.watches_pipeline(success.pipeline)
                and spec.watches_paths(
                    list(success.changed_paths) if success.changed_paths is not None else None
                )
            ):
                continue
            downstream = await session.get(Project, subscription.downstream)
            if downstream is None or not downstream.active or downstream.key in already:
                continue
            child = Event(
                id=new_event_id(),
                kind="trigger",
                project=downstream.name,
                upstream=success.project,
                parent_id=source.id,
                root_id=source.root_id,
                depth=source.depth + 1,
                details={"chain": [*chain, downstream.key]},
            )
            if downstream.key in chain:
                child.result, child.finished_at = "skipped", utcnow()
                child.reason = f"loop: {downstream.name} is already in this chain"
            elif child.depth > self.settings.max_depth:
                child.result, child.finished_at = "skipped", utcnow()
                child.reason = (
                    f"chain longer than CONJUNCTION_MAX_DEPTH ({self.settings.max_depth})"
                )
            else:
                child.deadline_at = utcnow() + timedelta(seconds=self.settings.result_timeout)
                await JobQueue.enqueue(session, "trigger", {"event_id": child.id})
            metrics.TRIGGERS.labels(child.result or "queued").inc()
            session.add(child)
            children.append(child)
        return children

    @staticmethod
    async def _triggered_for(session: AsyncSession, success: UpstreamSuccess) -> set[str]:
        """Downstreams already triggered for this upstream commit (by another of its pipelines)."""
        if success.sha is None:
            return set()
        sources = select(Event.id).where(Event.project == success.project, Event.sha == success.sha)
        rows = await session.scalars(
            select(Event.project).where(Event.kind == "trigger", Event.parent_id.in_(sources))
        )
        return {project_key(name) for name in rows}

    async def start_trigger(self, payload: dict[str, Any]) -> None:
        """Job: start one downstream pipeline."""
        async with self.sessions() as session:
            event = await session.get(Event, payload["event_id"])
            if event is None or event.result is not None or event.parent_id is None:
                return
            parent = await session.get(Event, event.parent_id)
            downstream = await session.get(Project, project_key(event.project))
            upstream = await session.get(Project, project_key(event.upstream or ""))
        if parent is None or downstream is None:
            return
        config = config_of(downstream)
        request = TriggerRequest(
            event_id=event.id,
            project=downstream.name,
            upstream=parent.project,
            upstream_sha=parent.sha or "",
            upstream_ref=parent.ref or "",
            upstream_url=parent.url,
            callback_url=self.callback_url(event.id),
            callback_token=self.signer.token(event.id),
            trigger=config.trigger,
            default_branch=downstream.default_branch,
            owners=list(upstream.owners) if upstream else [],
            parent_id=parent.id,
            root_id=event.root_id,
            depth=event.depth,
        )
        try:
            started = await self._start(request)
        except TriggerError as exc:
            if not exc.permanent:
                raise
            metrics.TRIGGERS.labels("error").inc()
            await self.record_result(event.id, "error", reason=exc.reason)
            return
        async with self.sessions.begin() as session:
            stored = await session.get(Event, event.id)
            if stored is not None and stored.result is None:
                stored.started_at = stored.started_at or utcnow()
                stored.url = stored.url or started.url
                stored.run_id = stored.run_id or started.run_id
            await JobQueue.enqueue(
                session, "report", {"event_id": parent.id}, dedupe_key=f"report:{parent.id}"
            )
        metrics.TRIGGERS.labels("started").inc()

    async def _start(self, request: TriggerRequest) -> PipelineStarted:
        if request.trigger.webhook is not None:
            raise TriggerError("trigger.webhook is not supported by this server yet")
        forge = self.forge(request.project)
        if forge is None:
            raise TriggerError(f"no forge is configured for {request.project.split('/')[0]}")
        return await forge.start_pipeline(request)

    # -- results --------------------------------------------------------------------------

    async def record_result(
        self,
        event_id: str,
        result: str,
        *,
        url: str | None = None,
        sha: str | None = None,
        ref: str | None = None,
        ref_type: str = "branch",
        pipeline: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record a downstream's result (or that it is running) for one trigger event."""
        async with self.sessions.begin() as session:
            event = await session.get(Event, event_id, with_for_update=True)
            if event is None or event.kind != "trigger":
                raise UnknownEvent(event_id)
            if event.result is not None:
                if event.result == result or result == RUNNING:
                    return event
                if event.result != "timed_out":  # a late real result replaces a time-out
                    raise ResultConflict(
                        f"event {event_id} already finished with {event.result!r}, not {result!r}"
                    )
            event.url = url or event.url
            event.sha = sha or event.sha
            event.ref = ref or event.ref
            event.ref_type = ref_type
            event.pipeline = pipeline or event.pipeline
            event.details = {**event.details, **(details or {})}
            event.started_at = event.started_at or utcnow()
            if result == RUNNING:
                await self._enqueue_report(session, event)
                return event
            event.result = result
            event.reason = reason
            event.finished_at = utcnow()
            previous = await self._previous_result(session, event)
            event.change = classify(previous.result if previous else None, result)
            metrics.RESULTS.labels(result).inc()
            await self._enqueue_report(session, event)
            if result in BROKEN | PASSED:
                await JobQueue.enqueue(session, "issues", {"event_id": event.id})
            continues = result in PASSED and await session.scalar(
                select(Subscription.id)
                .where(Subscription.upstream == project_key(event.project))
                .limit(1)
            )
        if continues:
            await self.upstream_success(
                UpstreamSuccess(event.project, event.sha, event.ref, ref_type, event.pipeline),
                parent_id=event.id,
            )
        return event

    @staticmethod
    async def _enqueue_report(session: AsyncSession, event: Event) -> None:
        if event.parent_id:
            await JobQueue.enqueue(
                session,
                "report",
                {"event_id": event.parent_id},
                dedupe_key=f"report:{event.parent_id}",
            )

    @staticmethod
    async def _previous_result(
        session: AsyncSession, event: Event, results: frozenset[str] = frozenset(PASSED | FAILED)
    ) -> Event | None:
        """This downstream's last result (among `results`) for an earlier upstream success."""
        previous: Event | None = await session.scalar(
            select(Event)
            .where(
                Event.kind == "trigger",
                Event.project == event.project,
                Event.upstream == event.upstream,
                Event.id != event.id,
                Event.created_at <= event.created_at,
                Event.result.in_(results),
            )
            .order_by(Event.created_at.desc())
            .limit(1)
        )
        return previous

    async def pending_triggers(self, project: str) -> list[Event]:
        """Trigger events of `project` still waiting for a result, oldest first."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Event)
                .where(
                    Event.kind == "trigger",
                    Event.project == project,
                    Event.result.is_(None),
                )
                .order_by(Event.created_at)
            )
            return list(rows)

    async def get_event(self, event_id: str) -> Event | None:
        async with self.sessions() as session:
            return await session.get(Event, event_id)

    async def expire_overdue(self) -> int:
        """Mark triggered pipelines that never reported as timed_out."""
        async with self.sessions() as session:
            overdue = list(
                await session.scalars(
                    select(Event.id).where(
                        Event.kind == "trigger",
                        Event.result.is_(None),
                        Event.deadline_at < utcnow(),
                    )
                )
            )
        for event_id in overdue:
            await self.record_result(
                event_id, "timed_out", reason="no result within CONJUNCTION_RESULT_TIMEOUT"
            )
        return len(overdue)

    # -- reporting upstream ---------------------------------------------------------------

    async def post_report(self, payload: dict[str, Any]) -> None:
        """Job: post the aggregate of an event's downstream results on its commit."""
        async with self.sessions() as session:
            source = await session.get(Event, payload["event_id"])
            if source is None or source.sha is None:
                return
            upstream = await session.get(Project, project_key(source.project))
            if upstream is None or not upstream.active:
                return  # not installed here: results are shown downstream only
            children = await session.scalars(
                select(Event)
                .where(Event.parent_id == source.id, Event.result.is_distinct_from("skipped"))
                .order_by(Event.created_at)
            )
            rows = [await self._row(session, source, upstream, child) for child in children]
        forge = self.forge(source.project)
        if not rows or forge is None:
            return
        config = config_of(upstream)
        report = aggregate(rows, self.event_url(source.id))
        if config.report.commit_status:
            await forge.set_commit_status(source.project, source.sha, report)
        if config.report.check_run:
            await forge.upsert_check(source.project, source.sha, report)
        if config.report.pull_request_comment:
            body = f"**Conjunction: downstream**: {report.description}\n\n{report.summary}"
            await forge.comment_on_change(source.project, source.sha, texts.PR_COMMENT_MARKER, body)

    async def _row(
        self, session: AsyncSession, source: Event, upstream: Project, child: Event
    ) -> Row:
        downstream = await session.get(Project, project_key(child.project))
        private = downstream.private if downstream else False
        return Row(
            event=child,
            name=display_name(child.project, private, upstream.private),
            owners=list(downstream.owners) if downstream else [],
            required=config_of(upstream).report.is_required(child.project),
            compare_url=await self._compare_url(session, source, child),
        )

    async def _compare_url(self, session: AsyncSession, source: Event, child: Event) -> str | None:
        """Upstream changes since this downstream last passed."""
        if child.result in PASSED or source.sha is None:
            return None
        last_pass = await self._previous_result(session, child, frozenset(PASSED))
        if last_pass is None or last_pass.parent_id is None:
            return None
        passed_on = await session.get(Event, last_pass.parent_id)
        forge = self.forge(source.project)
        if passed_on is None or passed_on.sha in (None, source.sha) or forge is None:
            return None
        return forge.compare_url(source.project, passed_on.sha or "", source.sha)

    # -- breakage issues ------------------------------------------------------------------

    async def update_issues(self, payload: dict[str, Any]) -> None:
        """Job: open, comment on or close the breakage issue for one (upstream, downstream)."""
        async with self.sessions() as session:
            event = await session.get(Event, payload["event_id"])
            if event is None or event.parent_id is None or event.result is None:
                return
            parent = await session.get(Event, event.parent_id)
            downstream = await session.get(Project, project_key(event.project))
            upstream = await session.get(Project, project_key(parent.project if parent else ""))
            compare = (
                await self._compare_url(session, parent, event) if parent is not None else None
            )
        if parent is None or downstream is None:
            return
        upstream_name = parent.project
        targets = []
        if config_of(downstream).issues:
            targets.append(downstream.name)
        public_upstream = upstream is not None and not upstream.private
        if (
            upstream is not None
            and config_of(upstream).report.issues
            and not (downstream.private and public_upstream)
        ):
            targets.append(upstream.name)
        for repository in targets:
            await self._update_issue(
                repository, event, parent, downstream, upstream, upstream_name, compare
            )

    async def _update_issue(
        self,
        repository: str,
        event: Event,
        parent: Event,
        downstream: Project,
        upstream: Project | None,
        upstream_name: str,
        compare: str | None,
    ) -> None:
        forge = self.forge(repository)
        if forge is None:
            return
        link_key = (project_key(upstream_name), downstream.key, project_key(repository))
        async with self.sessions() as session:
            link = await session.get(IssueLink, link_key)
        is_open = link is not None and link.state == "open"
        trace = self.event_url(event.id)
        if event.result in BROKEN and is_open:
            assert link is not None
            await forge.comment_issue(
                repository, link.number, texts.still_failing(parent.sha, event.url, trace)
            )
        elif event.result in BROKEN and event.change == "broke":
            body = texts.issue_body(
                upstream=upstream_name,
                downstream=downstream.name,
                sha=parent.sha,
                run_url=event.url,
                compare_url=compare,
                trace_url=trace,
                downstream_owners=downstream.owners,
                upstream_owners=upstream.owners if upstream else [],
            )
            issue = await forge.open_issue(
                repository,
                texts.issue_title(upstream_name, downstream.name),
                body,
                [texts.ISSUE_LABEL],
            )
            async with self.sessions.begin() as session:
                await session.merge(
                    IssueLink(
                        upstream=link_key[0],
                        downstream=link_key[1],
                        repository=link_key[2],
                        number=issue.number,
                        url=issue.url,
                        state="open",
                    )
                )
        elif event.result in PASSED and is_open:
            assert link is not None
            await forge.close_issue(
                repository, link.number, texts.fixed(downstream.name, parent.sha, event.url)
            )
            async with self.sessions.begin() as session:
                stored = await session.get(IssueLink, link_key)
                if stored is not None:
                    stored.state = "closed"

    def job_handlers(self) -> dict[str, JobHandler]:
        return {
            "trigger": self.start_trigger,
            "report": self.post_report,
            "issues": self.update_issues,
        }
