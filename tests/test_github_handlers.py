"""GitHub events dispatched through the routers into an engine on SQLite and a fake forge."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gidgethub import sansio
from sqlalchemy import select

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine import Engine, UpstreamSuccess
from conjunction.forges.github import installations
from conjunction.forges.github.events import router
from conjunction.models import Event, Job, Project, Subscription
from conjunction.tokens import CallbackSigner
from testkit.memoryhost import MemoryHost
from testkit.payloads import fixture
from tests.fakegithub import FakeGitHub

HELLO = "github.com/Codertocat/Hello-World"
LIB = "github.com/acme/lib"
APP = "github.com/acme/app"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
VALID = f"upstreams:\n  - project: {LIB}\n"
INVALID = "owners: [alice]\nupstreams:\n  - project: not-a-project\n    branch: [main]\n"
CHECK_RUNS = "/repos/Codertocat/Hello-World/check-runs"


@pytest.fixture
async def engine(tmp_path: Path, forge: MemoryHost) -> AsyncIterator[Engine]:
    url = f"sqlite:///{tmp_path / 'conjunction.db'}"
    database = db.create_engine(url)
    await db.migrate(database)
    yield Engine(
        db.sessionmaker(database),
        Adapters.of(forge),
        Settings(database_url=url, public_url="https://conjunction.test"),
        CallbackSigner("k" * 20),
    )
    await database.dispose()


async def dispatch(engine: Engine, gh: FakeGitHub | None, event: str, data: dict[str, Any]) -> None:
    await router.dispatch(
        sansio.Event(data, event=event, delivery_id="delivery-1"),
        gh,
        engine=engine,
        host="github.com",
    )


async def projects(engine: Engine) -> dict[str, Project]:
    async with engine.sessions() as session:
        return {project.name: project for project in await session.scalars(select(Project))}


async def subscriptions(engine: Engine) -> list[tuple[str, str]]:
    async with engine.sessions() as session:
        rows = await session.scalars(select(Subscription).order_by(Subscription.id))
        return [(row.upstream, row.downstream) for row in rows]


async def events(engine: Engine) -> list[Event]:
    async with engine.sessions() as session:
        return list(await session.scalars(select(Event).order_by(Event.created_at)))


async def start_queued_triggers(engine: Engine) -> None:
    async with engine.sessions() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "trigger")))
    for job in jobs:
        await engine.job_handlers()["trigger"](job.payload)


async def index(engine: Engine, name: str, config: str | None, **kw: Any) -> None:
    await engine.index_project(name, private=False, default_branch="main", config_text=config, **kw)


def reads(forge: MemoryHost) -> list[tuple[str, Any]]:
    return forge.of("read_file")


# installation, installation_repositories


@pytest.mark.parametrize("action", ["created", "new_permissions_accepted"])
async def test_installing_indexes_listed_repositories_on_their_default_branch(
    engine: Engine, forge: MemoryHost, action: str
) -> None:
    forge.files[(HELLO, ".conjunction.yml")] = VALID
    forge.files[(HELLO, ".github/CODEOWNERS")] = "* @codertocat/core\n"
    forge.default_branches[HELLO] = "trunk"  # installation payloads do not say

    await dispatch(engine, None, "installation", fixture(f"github/installation.{action}.json"))

    assert reads(forge) == [
        (HELLO, ".conjunction.yml"),
        (HELLO, "CODEOWNERS"),
        (HELLO, ".github/CODEOWNERS"),
    ]
    project = (await projects(engine))[HELLO]
    assert (project.default_branch, project.installation_id, project.active) == (
        "trunk",
        957387,
        True,
    )
    assert project.owners == ["codertocat/core"]
    assert await subscriptions(engine) == [(LIB, "github.com/codertocat/hello-world")]


async def test_repository_with_invalid_config_is_indexed_anyway(
    engine: Engine, forge: MemoryHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    forge.files[(HELLO, ".conjunction.yml")] = INVALID
    await dispatch(engine, None, "installation", fixture("github/installation.created.json"))
    project = (await projects(engine))[HELLO]
    assert project.active
    assert project.config is None
    assert "line 3: upstreams.0.project" in (project.config_error or "")
    assert await subscriptions(engine) == []
    assert "invalid .conjunction.yml" in caplog.text


async def test_unsuspend_lists_the_installations_repositories(
    engine: Engine, forge: MemoryHost, fake_github: FakeGitHub
) -> None:
    fake_github.expect(
        "GET",
        "/installation/repositories",
        body={
            "total_count": 2,
            "repositories": [
                {"full_name": "Codertocat/Hello-World", "private": False, "default_branch": "main"},
                {"full_name": "Codertocat/Secret", "private": True, "default_branch": "dev"},
            ],
        },
    )
    await dispatch(
        engine, fake_github, "installation", fixture("github/installation.unsuspend.json")
    )
    indexed = await projects(engine)
    assert {name: (p.private, p.default_branch) for name, p in indexed.items()} == {
        HELLO: (False, "main"),
        "github.com/Codertocat/Secret": (True, "dev"),
    }
    assert {p.installation_id for p in indexed.values()} == {16598467}


async def test_added_repositories_are_indexed(engine: Engine, forge: MemoryHost) -> None:
    space = "github.com/Codertocat/Space"
    forge.files[(space, ".conjunction.yml")] = VALID
    data = fixture("github/installation_repositories.added.json")
    await dispatch(engine, None, "installation_repositories", data)
    assert [(name, p.installation_id) for name, p in (await projects(engine)).items()] == [
        (space, data["installation"]["id"])
    ]
    assert await subscriptions(engine) == [(LIB, "github.com/codertocat/space")]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("installation", "installation.deleted.json"),
        ("installation_repositories", "installation_repositories.removed.json"),
    ],
)
async def test_uninstalled_repositories_are_dropped(engine: Engine, event: str, name: str) -> None:
    await index(engine, "github.com/octocat/Hello-World", VALID)
    await index(engine, APP, VALID)
    await dispatch(engine, None, event, fixture(f"github/{name}"))
    assert not (await projects(engine))["github.com/octocat/Hello-World"].active
    assert await subscriptions(engine) == [(LIB, APP)]


async def test_suspend_drops_the_installations_projects(engine: Engine) -> None:
    await index(engine, HELLO, VALID)
    await index(engine, APP, VALID)
    await installations.remember(engine.sessions, [HELLO], 16598467)
    await installations.remember(engine.sessions, [APP], 1)
    await dispatch(engine, None, "installation", fixture("github/installation.suspend.json"))
    assert {name: p.active for name, p in (await projects(engine)).items()} == {
        HELLO: False,
        APP: True,
    }
    assert await subscriptions(engine) == [(LIB, APP)]
    assert (await projects(engine))[HELLO].installation_id is None


# push


def push(*paths: str, change: str = "modified", ref: str = "refs/heads/master") -> dict[str, Any]:
    data = fixture("github/push.json")
    data["ref"] = ref
    for commit in [*data["commits"], data["head_commit"]]:
        commit.update(added=[], modified=[], removed=[])
        commit[change] = list(paths)
    return data


@pytest.mark.parametrize(
    ("path", "change"),
    [
        (".conjunction.yml", "modified"),
        (".conjunction.yml", "added"),
        ("CODEOWNERS", "removed"),
        (".github/CODEOWNERS", "added"),
        ("docs/CODEOWNERS", "modified"),
    ],
)
async def test_push_changing_config_on_default_branch_reindexes(
    engine: Engine, forge: MemoryHost, path: str, change: str
) -> None:
    forge.files[(HELLO, ".conjunction.yml")] = VALID
    await dispatch(engine, None, "push", push("README.md", path, change=change))
    project = (await projects(engine))[HELLO]
    assert (project.config_sha, project.default_branch, project.installation_id) == (
        SHA,
        "master",
        1,
    )
    assert reads(forge)[0] == (HELLO, ".conjunction.yml")
    assert await subscriptions(engine) == [(LIB, "github.com/codertocat/hello-world")]
    assert forge.of("report_config") == []  # valid, and never invalid before: nothing to show


async def test_config_change_seen_only_in_head_commit_counts(
    engine: Engine, forge: MemoryHost
) -> None:
    data = push("README.md")
    data["head_commit"]["modified"] = [".conjunction.yml"]
    await dispatch(engine, None, "push", data)
    assert HELLO in await projects(engine)


@pytest.mark.parametrize(
    "data",
    [
        push(".conjunction.yml", ref="refs/heads/feature"),
        push(".conjunction.yml", ref="refs/tags/v1.0"),
        push("README.md", "src/.conjunction.yml"),
        push(),
    ],
    ids=["other branch", "tag", "other files", "no files"],
)
async def test_other_pushes_do_nothing(
    engine: Engine, forge: MemoryHost, data: dict[str, Any]
) -> None:
    forge.files[(HELLO, ".conjunction.yml")] = INVALID
    await dispatch(engine, None, "push", data)
    assert forge.calls == []
    assert await projects(engine) == {}


async def test_invalid_config_is_reported_on_its_commit_and_the_last_valid_one_stays(
    engine: Engine, forge: MemoryHost
) -> None:
    await index(engine, HELLO, VALID)
    forge.files[(HELLO, ".conjunction.yml")] = INVALID

    await dispatch(engine, None, "push", push(".conjunction.yml"))

    [(project, (sha, error))] = forge.of("report_config")
    assert (project, sha) == (HELLO, SHA)
    assert [(problem.line, problem.field) for problem in error.problems] == [
        (3, "upstreams.0.project"),
        (4, "upstreams.0.branch"),
    ]
    assert await subscriptions(engine) == [(LIB, "github.com/codertocat/hello-world")]


async def test_a_webhook_url_committed_in_the_config_is_refused_on_its_commit(
    engine: Engine, forge: MemoryHost
) -> None:
    await index(engine, HELLO, VALID)
    slack = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
    forge.files[(HELLO, ".conjunction.yml")] = f"{VALID}notify:\n  - slack: {slack}\n"

    await dispatch(engine, None, "push", push(".conjunction.yml"))

    [(project, (sha, error))] = forge.of("report_config")
    assert (project, sha) == (HELLO, SHA)
    assert [str(problem) for problem in error.problems] == [
        "line 4: notify.0.slack: looks like a Slack webhook URL; a webhook URL is a secret: store "
        "it in the server's secrets file (CONJUNCTION_SECRETS_FILE) under a name and write the "
        "name here"
    ]
    stored = (await projects(engine))[HELLO]
    assert stored.config is not None and stored.config["notify"] == []
    assert "XXXX" not in (stored.config_error or "-XXXX")


async def test_valid_config_after_an_invalid_one_is_reported_valid(
    engine: Engine, forge: MemoryHost
) -> None:
    await index(engine, HELLO, INVALID)
    forge.files[(HELLO, ".conjunction.yml")] = VALID
    await dispatch(engine, None, "push", push(".conjunction.yml"))
    assert forge.of("report_config") == [(HELLO, (SHA, None))]


async def test_push_without_installation_or_client_still_indexes(
    engine: Engine, forge: MemoryHost
) -> None:
    forge.files[(HELLO, ".conjunction.yml")] = INVALID
    data = push(".conjunction.yml")
    del data["installation"]
    await dispatch(engine, None, "push", data)
    project = (await projects(engine))[HELLO]
    assert project.installation_id is None
    assert project.config_error is not None


# check_suite and status


def check_suite(full_name: str, *, conclusion: str = "success", **app: Any) -> dict[str, Any]:
    data = fixture("github/check_suite.completed.json")
    data["repository"].update(full_name=full_name, html_url=f"https://github.com/{full_name}")
    data["check_suite"].update(head_branch="main", head_sha=SHA, conclusion=conclusion)
    data["check_suite"]["app"].update(app)
    return data


def status(full_name: str, *, state: str = "success", **changes: Any) -> dict[str, Any]:
    data = fixture("github/status.json")
    data["repository"]["full_name"] = full_name
    data["branches"][0]["name"] = "main"
    data.update({"sha": SHA, "state": state, "context": "ci/jenkins", **changes})
    return data


@pytest.fixture
async def lib_and_app(engine: Engine) -> None:
    await index(engine, LIB, None)
    await index(engine, APP, VALID)


async def pending_trigger(engine: Engine) -> Event:
    """A new upstream success of LIB (a new commit each time), and the trigger it made for APP,
    sent (a newer success does not supersede it)."""
    sha = uuid.uuid4().hex + "0" * 8
    await engine.upstream_success(UpstreamSuccess(LIB, sha, "main"))
    trigger = (await engine.pending_triggers(APP))[-1]
    async with engine.sessions.begin() as session:
        sent = await session.get(Event, trigger.id)
        assert sent is not None
        sent.sending_at, sent.state = sent.created_at, "sending"
    return trigger


@pytest.mark.usefixtures("lib_and_app")
async def test_check_suite_of_another_app_starts_downstreams(
    engine: Engine, forge: MemoryHost
) -> None:
    await dispatch(engine, None, "check_suite", check_suite("acme/lib"))
    await start_queued_triggers(engine)
    [(project, request)] = forge.of("start_pipeline")
    assert (project, request.upstream, request.upstream_sha, request.upstream_ref) == (
        APP,
        LIB,
        SHA,
        "main",
    )
    build = next(event for event in await events(engine) if event.kind == "build")
    assert (build.pipeline, build.url) == (
        "octocoders-linter",
        f"https://github.com/acme/lib/commit/{SHA}/checks",
    )


@pytest.mark.usefixtures("lib_and_app")
async def test_statuses_and_check_suites_that_name_no_event_are_never_a_result(
    engine: Engine, forge: MemoryHost
) -> None:
    """A CLA bot's failing status, a coverage app's passing check suite on a dependabot branch:
    they arrive while APP's trigger waits for its run, and are not its result (CONTRACT §7)."""
    trigger = await pending_trigger(engine)
    cla = status("acme/app", state="failure", context="license/cla", description="Sign the CLA")
    await dispatch(engine, None, "status", cla)
    coverage = check_suite("acme/app", conclusion="success", name="Codecov", slug="codecov")
    coverage["check_suite"]["head_branch"] = "dependabot/pip/requests-2.32.0"
    await dispatch(engine, None, "check_suite", coverage)
    await dispatch(engine, None, "check_suite", check_suite("acme/app", conclusion="failure"))

    assert [event.id for event in await engine.pending_triggers(APP)] == [trigger.id]
    recorded = await engine.get_event(trigger.id)
    assert recorded is not None and (recorded.result, recorded.change) == (None, None)
    assert forge.of("open_issue") == []


@pytest.mark.usefixtures("lib_and_app")
@pytest.mark.parametrize(
    "app",
    [
        {"name": "Conjunction", "slug": "conjunction"},
        {"name": "Conjunction (staging)", "slug": "conjunction-staging"},
        {"name": "GitHub Actions", "slug": "github-actions"},
    ],
)
async def test_check_suites_of_our_app_and_of_actions_are_ignored(
    engine: Engine, forge: MemoryHost, app: dict[str, str]
) -> None:
    trigger = await pending_trigger(engine)
    before = len(await events(engine))
    await dispatch(engine, None, "check_suite", check_suite("acme/lib", **app))
    await dispatch(engine, None, "check_suite", check_suite("acme/app", **app))
    assert len(await events(engine)) == before
    assert [e.id for e in await engine.pending_triggers(APP)] == [trigger.id]


@pytest.mark.usefixtures("lib_and_app")
async def test_successful_status_starts_downstreams(engine: Engine, forge: MemoryHost) -> None:
    url = "https://ci.acme.dev/job/lib/12/"
    await dispatch(engine, None, "status", status("acme/lib", target_url=url))
    await start_queued_triggers(engine)
    [(project, request)] = forge.of("start_pipeline")
    assert (project, request.upstream_sha, request.upstream_ref, request.upstream_url) == (
        APP,
        SHA,
        "main",
        url,
    )
    build = next(event for event in await events(engine) if event.kind == "build")
    assert build.pipeline == "ci/jenkins"


@pytest.mark.usefixtures("lib_and_app")
async def test_status_naming_an_event_reports_that_event(engine: Engine) -> None:
    first = await pending_trigger(engine)
    second = await pending_trigger(engine)
    data = status("acme/app", state="error", description=f"Conjunction event {second.id}")
    await dispatch(engine, None, "status", data)
    assert [e.id for e in await engine.pending_triggers(APP)] == [first.id]
    recorded = await engine.get_event(second.id)
    assert recorded is not None
    assert (recorded.result, recorded.pipeline) == ("error", "ci/jenkins")


@pytest.mark.usefixtures("lib_and_app")
async def test_a_status_whose_target_url_names_the_event_reports_it(engine: Engine) -> None:
    first = await pending_trigger(engine)
    url = f"https://ci.acme.dev/job/app/7/?conjunction_event={first.id}"
    await dispatch(engine, None, "status", status("acme/app", state="failure", target_url=url))
    recorded = await engine.get_event(first.id)
    assert recorded is not None and (recorded.result, recorded.url) == ("failure", url)


@pytest.mark.usefixtures("lib_and_app")
@pytest.mark.parametrize(
    "changes",
    [{"context": "conjunction/downstream"}, {"state": "pending"}],
    ids=["our own context", "pending"],
)
async def test_our_own_status_and_pending_ones_are_ignored(
    engine: Engine, changes: dict[str, str]
) -> None:
    trigger = await pending_trigger(engine)
    before = len(await events(engine))
    await dispatch(engine, None, "status", {**status("acme/lib"), **changes})
    await dispatch(engine, None, "status", {**status("acme/app"), **changes})
    assert len(await events(engine)) == before
    assert [e.id for e in await engine.pending_triggers(APP)] == [trigger.id]
