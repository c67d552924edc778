"""Storage: migrations, the subscription index kept by Engine.index_project, event timestamps.

Every test runs on SQLite and, when CONJUNCTION_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conjunction.adapters import Adapters
from conjunction.config.repo_config import ConfigError, Upstream
from conjunction.config.settings import Settings
from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.engine import Engine, UpstreamSuccess
from conjunction.engine.subscriptions import Candidate, subscribers
from conjunction.models import Base, Event, Job, KeyValue, Project, Subscription
from conjunction.tokens import CallbackSigner
from conjunction.views.api import project_list

Sessions = async_sessionmaker[AsyncSession]

LIB = "github.com/acme/lib"
TOOL = "github.com/acme/tool"
APP = "github.com/acme/app"
OTHER = "github.com/acme/other"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(database: AsyncEngine) -> Sessions:
    await migrate(database)
    return sessionmaker(database)


@pytest.fixture
def engine(sessions: Sessions, database_url: str) -> Engine:
    return Engine(
        sessions, Adapters(), Settings(database_url=database_url), CallbackSigner("k" * 20)
    )


def upstreams(*names: str) -> str:
    return "upstreams:" + "".join(f"\n  - project: {name}" for name in names) + "\n"


async def index(engine: Engine, name: str, config: str | None, sha: str = "s1") -> Any:
    return await engine.index_project(
        name, private=False, default_branch="main", config_text=config, sha=sha
    )


async def subscriptions(sessions: Sessions) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Subscription.upstream, Subscription.downstream).order_by(
                Subscription.downstream, Subscription.upstream
            )
        )
        return [(upstream, downstream) for upstream, downstream in rows]


async def project(sessions: Sessions, key: str) -> Project:
    async with sessions() as session:
        found = await session.get(Project, key)
    assert found is not None
    return found


# -- migrations ---------------------------------------------------------------------------


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _indexes(connection: Connection, table: str) -> dict[str, list[str | None]]:
    return {
        str(ix["name"]): list(ix["column_names"]) for ix in inspect(connection).get_indexes(table)
    }


async def _versions(database: AsyncEngine) -> list[str]:
    async with database.connect() as connection:
        rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
        return [row[0] for row in rows]


async def test_migrate_creates_the_schema_once(database: AsyncEngine) -> None:
    async with database.connect() as connection:
        assert await connection.run_sync(_table_names) == set()

    await migrate(database)
    async with database.connect() as connection:
        tables = await connection.run_sync(_table_names)
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    versions = await _versions(database)
    assert len(versions) == 1

    async with sessionmaker(database).begin() as session:
        session.add(KeyValue(key="kept", value="across migrate runs"))
    await migrate(database)  # a second start of the server: nothing to do
    async with database.connect() as connection:
        assert await connection.run_sync(_table_names) == tables
    assert await _versions(database) == versions
    async with sessionmaker(database)() as session:
        kept = await session.get(KeyValue, "kept")
    assert kept is not None and kept.value == "across migrate runs"


async def test_replicas_started_together_migrate_one_at_a_time(database_url: str) -> None:
    """Three processes starting on one new PostgreSQL database (replicas, or an upgrade rolled
    out to several): one applies the migrations, the others wait and find them applied."""
    if database_url.startswith("sqlite"):
        pytest.skip("replicas share a PostgreSQL database; an SQLite file has one server")
    url = database_url
    starts = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from conjunction import db\n"
            "async def start():\n"
            "    engine = db.create_engine(sys.argv[1])\n"
            "    await db.migrate(engine)\n"
            "    await engine.dispose()\n"
            "asyncio.run(start())",
            url,
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for start in starts:
        _, errors = await asyncio.wait_for(start.communicate(), 120)
        assert start.returncode == 0, errors.decode()
    database = create_engine(url)
    try:
        async with database.connect() as connection:
            tables = await connection.run_sync(_table_names)
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        assert len(await _versions(database)) == 1
    finally:
        await database.dispose()


async def test_the_downstreams_of_an_upstream_are_read_from_an_index_alone(
    database: AsyncEngine,
) -> None:
    await migrate(database)
    async with database.connect() as connection:
        indexes = await connection.run_sync(_indexes, "subscriptions")
    assert indexes.get("ix_subscriptions_upstream") == ["upstream", "id", "downstream"]

    # The lookup every upstream success makes and the fan-out's graph walk: through the index,
    # never a table scan; on SQLite the walk reads no table row.
    walk = "SELECT upstream, downstream FROM subscriptions WHERE upstream = :upstream"
    async with database.connect() as connection:
        if database.dialect.name == "sqlite":
            rows = await connection.execute(text(f"EXPLAIN QUERY PLAN {walk}"), {"upstream": LIB})
            plan = " ".join(str(row[-1]) for row in rows)
            assert "COVERING INDEX ix_subscriptions_upstream" in plan, plan
        else:
            await connection.execute(text("SET enable_seqscan = off"))
            rows = await connection.execute(text(f"EXPLAIN {walk}"), {"upstream": LIB})
            plan = " ".join(str(row[0]) for row in rows)
            assert "ix_subscriptions_upstream" in plan, plan


# -- the subscription index -----------------------------------------------------------------


async def test_reindexing_replaces_a_projects_subscriptions(
    engine: Engine, sessions: Sessions
) -> None:
    assert await index(engine, OTHER, upstreams(LIB)) is None
    assert await index(engine, APP, upstreams(LIB, TOOL)) is None
    assert await index(engine, APP, upstreams(LIB, TOOL)) is None  # the same push, redelivered
    assert await subscriptions(sessions) == [(LIB, APP), (TOOL, APP), (LIB, OTHER)]

    assert await index(engine, APP, upstreams(TOOL), sha="s2") is None
    assert await subscriptions(sessions) == [(TOOL, APP), (LIB, OTHER)]

    assert await index(engine, APP, None, sha="s3") is None  # the file was deleted
    assert await subscriptions(sessions) == [(LIB, OTHER)]
    assert (await project(sessions, APP)).config is None


async def test_project_names_are_indexed_case_insensitively(
    engine: Engine, sessions: Sessions
) -> None:
    assert await index(engine, "github.com/Acme/App", upstreams("github.com/Acme/Lib")) is None
    assert await subscriptions(sessions) == [(LIB, APP)]
    assert (await project(sessions, APP)).name == "github.com/Acme/App"


@pytest.mark.parametrize(
    "broken", ["upstreams: [\n", "upstreams:\n  - project: not-a-project\n", "- just a list\n"]
)
async def test_invalid_config_keeps_the_last_valid_one(
    engine: Engine, sessions: Sessions, broken: str
) -> None:
    assert await index(engine, APP, upstreams(LIB), sha="good") is None
    valid = await project(sessions, APP)

    error = await index(engine, APP, broken, sha="bad")
    assert isinstance(error, ConfigError)
    stored = await project(sessions, APP)
    assert stored.config == valid.config
    assert stored.config_sha == "good"
    assert stored.config_error == str(error)
    assert await subscriptions(sessions) == [(LIB, APP)]

    assert await index(engine, APP, upstreams(TOOL), sha="fixed") is None
    fixed = await project(sessions, APP)
    assert (fixed.config_error, fixed.config_sha) == (None, "fixed")
    assert await subscriptions(sessions) == [(TOOL, APP)]


async def test_an_upstreams_subscribers_are_its_active_downstreams_in_the_order_they_subscribed(
    engine: Engine, sessions: Sessions
) -> None:
    tagged = "upstreams:\n  - project: github.com/Acme/Lib\n    tags: ['v*']\n"
    assert await index(engine, "github.com/Acme/Other", tagged) is None
    assert await index(engine, APP, upstreams(TOOL, LIB)) is None
    assert await index(engine, "github.com/acme/gone", upstreams(LIB)) is None
    async with sessions.begin() as session:
        gone = await session.get(Project, "github.com/acme/gone")
        assert gone is not None
        gone.active = False  # its subscription stays, as an uninstalled project's row does

    async with sessions() as session:
        found = await subscribers(session, LIB)
        assert await subscribers(session, "github.com/acme/unknown") == []

    assert found == [
        Candidate(
            OTHER, "github.com/Acme/Other", Upstream(project="github.com/Acme/Lib", tags=["v*"])
        ),
        Candidate(APP, APP, Upstream(project=LIB)),
    ]


async def test_unknown_upstream_has_no_subscribers(engine: Engine, sessions: Sessions) -> None:
    assert await index(engine, APP, upstreams(LIB)) is None

    unknown = await engine.upstream_success(
        UpstreamSuccess(project="github.com/acme/unknown", sha="b" * 40, ref="main")
    )
    known = await engine.upstream_success(UpstreamSuccess(project=LIB, sha="a" * 40, ref="main"))

    async with sessions() as session:
        children = await session.execute(select(Event.parent_id, Event.project))
        jobs = await session.execute(select(Job.kind, Job.payload).order_by(Job.id))
        triggers = [(parent, child) for parent, child in children if parent is not None]
        assert triggers == [(known.id, APP)]
        assert [kind for kind, _ in jobs] == ["trigger", "report"]
    assert unknown.kind == "build" and unknown.result == "success"


# -- timestamps ---------------------------------------------------------------------------


async def test_event_timestamps_come_back_as_aware_utc(sessions: Sessions) -> None:
    created = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    started = datetime(2026, 3, 4, 7, 30, tzinfo=timezone(timedelta(hours=2)))  # 05:30 UTC
    async with sessions.begin() as session:
        session.add(
            Event(
                id="e1",
                kind="trigger",
                project=APP,
                root_id="e1",
                created_at=created,
                started_at=started,
            )
        )
        session.add(Event(id="e2", kind="build", project=LIB, root_id="e2"))

    async with sessions() as session:
        first = await session.get(Event, "e1")
        second = await session.get(Event, "e2")
        later = await session.scalars(
            select(Event.id).where(Event.started_at > datetime(2026, 3, 4, 5, 29, tzinfo=UTC))
        )
        assert list(later) == ["e1"]
    assert first is not None and second is not None
    assert first.created_at == created
    assert first.created_at.tzinfo is UTC
    assert first.started_at == started
    assert first.started_at is not None and first.started_at.tzinfo is UTC
    assert (first.started_at.hour, first.started_at.minute) == (5, 30)
    assert first.finished_at is None
    assert second.created_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - second.created_at) < timedelta(minutes=1)


# -- the run model's migration ------------------------------------------------------------

OLD_EVENTS = [
    # id, kind, result, reason, started, sending, details
    ("b1", "build", "success", None, None, None, {"chain": [LIB], "waiting": {APP: "b1"}}),
    ("t1", "trigger", None, None, None, None, {"chain": [LIB, APP]}),
    ("t2", "trigger", None, None, None, "2026-01-01 00:00:00", {}),
    ("t3", "trigger", "skipped", "superseded by 1234567", None, None, {}),
    ("t4", "trigger", "skipped", "upstream x failed", None, None, {"fallout": "x"}),
    (
        "t5",
        "trigger",
        "failure",
        None,
        "2026-01-01 00:00:00",
        "2026-01-01 00:00:00",
        {
            "hint": "flaky?",
            "notified": True,
            "changes": {"culprit": None},
            "metadata": {"sha": "abc1234"},
            "confirmation": {
                "step": "again",
                "last_passed_sha": "c" * 40,
                "last_passed_upstream": "b0",
                "reruns": ["t6"],
            },
        },
    ),
    ("t6", "trigger", "timed_out", None, None, None, {"step": "again", "upstream_sha": "d"}),
]


async def test_the_run_model_migration_carries_details_into_columns(database: AsyncEngine) -> None:
    """A database at the previous head, with events as it wrote them, upgraded: every key that
    `details` held is in its column, each trigger has its state and step."""
    await migrate(database, "0006_perf")
    insert = text(
        "INSERT INTO events (id, kind, project, root_id, depth, ref_type, result, reason,"
        " started_at, sending_at, details, created_at)"
        " VALUES (:id, :kind, :project, 'b1', 0, 'branch', :result, :reason, :started,"
        " :sending, :details, '2026-01-01 00:00:00')"
    )
    async with database.begin() as connection:
        for event_id, kind, result, reason, started, sending, details in OLD_EVENTS:
            await connection.execute(
                insert,
                {
                    "id": event_id,
                    "kind": kind,
                    "project": APP,
                    "result": result,
                    "reason": reason,
                    "started": started and datetime.fromisoformat(started),
                    "sending": sending and datetime.fromisoformat(sending),
                    "details": json.dumps(details),
                },
            )
    await migrate(database)

    async with sessionmaker(database)() as session:
        events = {event.id: event for event in await session.scalars(select(Event))}
    assert {event_id: (e.state, e.step) for event_id, e in events.items()} == {
        "b1": (None, None),
        "t1": ("planned", "first"),
        "t2": ("sending", "first"),
        "t3": ("superseded", "first"),
        "t4": ("skipped", "first"),
        "t5": ("finished", "first"),
        "t6": ("timed_out", "again"),
    }
    build, failure, rerun = events["b1"], events["t5"], events["t6"]
    assert (build.chain, build.waiting) == ([LIB], {APP: "b1"})
    assert (events["t1"].chain, events["t4"].fallout) == ([LIB, APP], "x")
    assert (failure.hint, failure.notified, failure.changes) == ("flaky?", True, {"culprit": None})
    assert (failure.confirming, failure.last_passed_sha, failure.last_passed_build_id) == (
        "again",
        "c" * 40,
        "b0",
    )
    assert (failure.ci_metadata, failure.attempt) == ({"sha": "abc1234"}, 1)
    assert (rerun.upstream_sha, events["t1"].artifacts) == ("d", [])


async def test_projects_are_listed_a_page_at_a_time(engine: Engine, sessions: Sessions) -> None:
    for name in (LIB, TOOL, APP):
        await index(engine, name, None)
    await engine.index_project(OTHER, private=True, default_branch="main", config_text=None)
    listed = await project_list(sessions, admin=False, page=2, per_page=2)
    assert [p["project"] for p in listed["projects"]] == [TOOL]
    assert (listed["total"], listed["pages"], listed["next"]) == (3, 2, None)
    everything = await project_list(sessions, admin=True, page=1, per_page=200)
    assert [p["project"] for p in everything["projects"]] == [APP, LIB, OTHER, TOOL]


async def test_the_excerpts_migration_keeps_every_event_and_stores_an_excerpt(
    database: AsyncEngine,
) -> None:
    """A database at the previous head, with a failure recorded, upgraded: the event is whole,
    without an excerpt, and an excerpt can be stored on it and read back."""
    await migrate(database, "0009_commands")
    async with database.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (id, kind, project, root_id, depth, ref_type, result, attempt,"
                " chain, waiting, artifacts, notified, created_at)"
                " VALUES ('t1', 'trigger', :project, 'b1', 1, 'branch', 'failure', 1, '[]', '{}',"
                " '[]', false, '2026-01-01 00:00:00')"
            ),
            {"project": APP},
        )
    await migrate(database)
    excerpt = {"text": "FAILED x", "source": "log", "cause": "test failure", "log_url": None}
    async with sessionmaker(database).begin() as session:
        failure = await session.get(Event, "t1")
        assert failure is not None
        assert (failure.result, failure.excerpt) == ("failure", None)
        failure.excerpt = excerpt
    async with sessionmaker(database)() as session:
        stored = await session.get(Event, "t1")
    assert stored is not None and stored.excerpt == excerpt


async def test_webhook_bodies_are_compressed_with_lz4_on_postgresql(
    database: AsyncEngine, database_url: str
) -> None:
    """PostgreSQL compresses a delivery's 20 KB body as it stores it: with lz4, a fraction of
    the CPU of its default method."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite compresses nothing")
    await migrate(database)
    async with database.connect() as connection:
        compression = await connection.scalar(
            text(
                "SELECT attcompression::text FROM pg_attribute"
                " WHERE attrelid = 'deliveries'::regclass AND attname = 'body'"
            )
        )
    assert compression == "l"


async def test_the_claims_migration_keeps_every_trigger_unclaimed_and_indexes_the_waiting(
    database: AsyncEngine,
) -> None:
    """A database at the previous head, with a trigger waiting for its result, upgraded: the
    trigger is whole and no claim; a claimant of 200 characters is kept as its run id, and a
    project's triggers awaiting a claim are read from their own index."""
    await migrate(database, "0013_graph_version")
    async with database.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (id, kind, project, root_id, depth, ref_type, state, attempt,"
                " chain, waiting, artifacts, notified, created_at)"
                " VALUES ('t1', 'trigger', :project, 'b1', 1, 'branch', 'started', 1, '[]',"
                " '{}', '[]', false, '2026-01-01 00:00:00')"
            ),
            {"project": APP},
        )
    await migrate(database)
    async with sessionmaker(database).begin() as session:
        trigger = await session.get(Event, "t1")
        assert trigger is not None
        assert (trigger.state, trigger.claim, trigger.run_id) == ("started", False, None)
        trigger.claim, trigger.run_id = True, "b" * 200
    async with sessionmaker(database)() as session:
        stored = await session.get(Event, "t1")
    assert stored is not None and (stored.claim, stored.run_id) == (True, "b" * 200)
    async with database.connect() as connection:
        indexes = await connection.run_sync(
            lambda sync: {ix["name"]: ix for ix in inspect(sync).get_indexes("events")}
        )
    assert indexes["ix_events_claims"]["column_names"] == ["project", "created_at"]
