"""Database tables. Alembic migrations under conjunction/migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Delivery(Base):
    """A webhook delivery as received: kept so the work it asks for survives a restart."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("forge", "delivery_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    forge: Mapped[str] = mapped_column(String(16))
    delivery_id: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]]
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "state", "run_at"),
        Index("ix_jobs_dedupe", "dedupe_key", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    # Whose forge budget the job spends (`github.com/acme`): a worker runs only so many at once.
    concurrency_key: Mapped[str | None] = mapped_column(String(300))
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class WorkerBeat(Base):
    """A running worker's last sign of life: the jobs of one silent too long are taken again."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[datetime]


class Project(Base):
    """A repository Conjunction knows, with its last valid `.conjunction.yml`."""

    __tablename__ = "projects"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    private: Mapped[bool] = mapped_column(default=False)
    default_branch: Mapped[str] = mapped_column(String(200), default="main")
    config: Mapped[dict[str, Any] | None]
    config_sha: Mapped[str | None] = mapped_column(String(64))
    config_error: Mapped[str | None] = mapped_column(Text)
    owners: Mapped[list[Any]] = mapped_column(default=list)
    installation_id: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """One `upstreams:` entry: downstream is built against upstream."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        # in subscription order, with both ends of each edge: the fan-out's graph walk reads
        # the index alone
        Index("ix_subscriptions_upstream", "upstream", "id", "downstream"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upstream: Mapped[str] = mapped_column(String(300))
    downstream: Mapped[str] = mapped_column(String(300), index=True)
    spec: Mapped[dict[str, Any]]


class GraphVersion(Base):
    """One row, bumped by database triggers whenever the subscription graph changes (a
    subscription, or a project's name or `active`): what `conjunction.engine.graph` checks its
    cache against."""

    __tablename__ = "graph_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class Event(Base):
    """An upstream success (kind "build") or a request to run one downstream (kind "trigger")."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_parent", "parent_id"),
        Index("ix_events_root", "root_id"),
        Index("ix_events_project", "project", "created_at"),
        Index("ix_events_upstream", "upstream", "created_at"),
        Index("ix_events_pending", "result", "deadline_at"),
        Index("ix_events_run", "project", "run_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    project: Mapped[str] = mapped_column(String(300))
    upstream: Mapped[str | None] = mapped_column(String(300))
    parent_id: Mapped[str | None] = mapped_column(String(32))
    root_id: Mapped[str] = mapped_column(String(32))
    depth: Mapped[int] = mapped_column(default=0)
    sha: Mapped[str | None] = mapped_column(String(64))
    ref: Mapped[str | None] = mapped_column(String(300))
    ref_type: Mapped[str] = mapped_column(String(8), default="branch")
    pipeline: Mapped[str | None] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(String(16))
    change: Mapped[str | None] = mapped_column(String(16))  # a conjunction.results.Verdict
    reason: Mapped[str | None] = mapped_column(Text)
    # the CI's run: the id its start was answered with, or the claimant that claimed it
    run_id: Mapped[str | None] = mapped_column(String(200))
    # dispatched by a webhook with `claim: true`: the run claims it (`POST /api/v1/claims`),
    # its claimant becoming `run_id`
    claim: Mapped[bool] = mapped_column(default=False)
    # a confirming re-run (`confirm: true`) or a culprit search's step (`step` "bisect"): the
    # failure it re-runs or explains; not part of the pair's history, never a row of its own
    confirms_id: Mapped[str | None] = mapped_column(String(32))
    # -- the run model (conjunction/runs.py) --
    via: Mapped[str | None] = mapped_column(String(8))  # a build: a conjunction.runs.Via
    step: Mapped[str | None] = mapped_column(String(16))  # a trigger: a conjunction.runs.Step
    state: Mapped[str | None] = mapped_column(
        String(16)
    )  # a trigger: a conjunction.runs.TriggerState
    attempt: Mapped[int] = mapped_column(default=1)  # the CI's attempt the result came from
    # a change (ref_type "change"): the pull/merge request, its URL and the commit it is on
    change_number: Mapped[int | None]
    change_url: Mapped[str | None] = mapped_column(Text)
    base_sha: Mapped[str | None] = mapped_column(String(64))
    # a trigger run against another upstream commit than its build's (a confirm, a bisect step)
    upstream_sha: Mapped[str | None] = mapped_column(String(64))
    upstream_build_id: Mapped[str | None] = mapped_column(String(32))  # the build that made it
    chain: Mapped[list[Any]] = mapped_column(default=list)  # project keys from the origin
    waiting: Mapped[dict[str, Any]] = mapped_column(default=dict)  # an origin's diamond bottoms
    # a failure being confirmed: the step it waits for, and what the pair last passed with
    confirming: Mapped[str | None] = mapped_column(String(16))
    last_passed_sha: Mapped[str | None] = mapped_column(String(64))
    last_passed_build_id: Mapped[str | None] = mapped_column(String(32))
    hint: Mapped[str | None] = mapped_column(String(16))  # `flaky?`
    notified: Mapped[bool] = mapped_column(default=False)  # the pair's channels were told
    fallout: Mapped[str | None] = mapped_column(String(300))  # skipped: the upstream that failed
    changes: Mapped[dict[str, Any] | None]  # what changed upstream since the pair last passed
    artifacts: Mapped[list[Any]] = mapped_column(default=list)
    ci_metadata: Mapped[dict[str, Any] | None]  # what a CI reported beside its result
    excerpt: Mapped[
        dict[str, Any] | None
    ]  # a failure: why, in its own lines (conjunction.excerpts)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sending_at: Mapped[datetime | None]  # a trigger's start was asked of its runner
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]


AWAITING_CLAIM = and_(Event.claim.is_(True), Event.run_id.is_(None), Event.result.is_(None))
"""A trigger whose run has yet to claim it (its state says whether it was sent)."""

# the triggers awaiting a claim, a project's oldest first: a few rows, however long its history
Index(
    "ix_events_claims",
    Event.project,
    Event.created_at,
    postgresql_where=AWAITING_CLAIM,
    sqlite_where=AWAITING_CLAIM,
)


class TriggerResult(Base):
    """Every final result reported for a trigger event, in order: the event holds the one taken
    (the newest attempt's); a late report of an older attempt is kept here only."""

    __tablename__ = "trigger_results"
    __table_args__ = (Index("ix_trigger_results_event", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int]
    result: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    taken: Mapped[bool]  # it became the event's result
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)


class IssueLink(Base):
    """The open (or last closed) breakage issue for one (upstream, downstream) pair in one repo."""

    __tablename__ = "issue_links"

    upstream: Mapped[str] = mapped_column(String(300), primary_key=True)
    downstream: Mapped[str] = mapped_column(String(300), primary_key=True)
    repository: Mapped[str] = mapped_column(String(300), primary_key=True)
    number: Mapped[int]
    url: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(8), default="open")
    last_event_id: Mapped[str | None] = mapped_column(String(32))  # the result last acted on
    last_attempt: Mapped[int | None]  # and its attempt: a re-run in the CI is acted on again
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Bisect(Base):
    """A culprit search (CONTRACT §10): the upstream commits of one failure's range, run one at
    a time against the downstream (`conjunction.bisect`), and what it found."""

    __tablename__ = "bisects"
    __table_args__ = (
        Index("ix_bisects_failure", "failure_id"),
        Index("ix_bisects_current", "current_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upstream: Mapped[str] = mapped_column(String(300))  # project names, as the failure has them
    downstream: Mapped[str] = mapped_column(String(300))
    # "upstream -> downstream" (project keys) while it runs: one search of a pair at a time
    running: Mapped[str | None] = mapped_column(String(620), unique=True)
    failure_id: Mapped[str] = mapped_column(String(32))  # the failing trigger event it explains
    base_sha: Mapped[str] = mapped_column(String(64))  # the upstream commit the pair passed with
    head_sha: Mapped[str] = mapped_column(String(64))  # the failing upstream commit
    commits: Mapped[
        list[Any]
    ]  # after base up to head, oldest first: sha, title, author, login, url
    steps: Mapped[list[Any]] = mapped_column(default=list)  # event, sha, again, result; in order
    current_id: Mapped[str | None] = mapped_column(String(32))  # the step event under way
    max_runs: Mapped[int] = mapped_column(default=10)
    confirm: Mapped[bool] = mapped_column(default=False)
    requested_by: Mapped[str | None] = mapped_column(String(200))  # None: `bisect: true`
    state: Mapped[str] = mapped_column(String(16), default="running")  # running, done
    answer: Mapped[dict[str, Any] | None]  # a conjunction.bisect.Answer, once done
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class CommandComment(Base):
    """A comment that held commands (CONTRACT §9), taken by the delivery that acts on it: the same
    comment delivered again under another delivery id is not acted on again."""

    __tablename__ = "commands"

    forge: Mapped[str] = mapped_column(String(16), primary_key=True)
    project: Mapped[str] = mapped_column(String(300), primary_key=True)  # a project key
    comment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(100))  # of the delivery acting on it
    author: Mapped[str] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectToken(Base):
    """A token that reports builds of one project; only its hash is kept."""

    __tablename__ = "project_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(300), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Tag(Base):
    """A tag of a GitHub repository as its `push` delivery announced it: a `workflow_run` names
    a tag only as its `head_branch`, and this tells the two apart."""

    __tablename__ = "tags"

    project: Mapped[str] = mapped_column(String(300), primary_key=True)  # a project key
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    sha: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KeyValue(Base):
    __tablename__ = "key_values"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class GitProject(Base):
    """A project read through git itself (`python app.py project add GIT_URL`): where from."""

    __tablename__ = "git_projects"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(200))  # a name, never the value
    private: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
