"""`python app.py gitlab add`: the bot's role checked, one webhook created or updated, the
project indexed — what the person running it reads, and the calls GitLab receives."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from conjunction import db
from conjunction.app import main
from conjunction.config.settings import Settings
from conjunction.forges.gitlab.command import gitlab_add
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.models import Project
from testkit.settings import with_forge
from tests.fakegitlab import WEBHOOK_TOKEN, FakeGitLab, encoded, gitlab_host

HOOK_URL = "https://conjunction.test/webhooks/gitlab"
CONFIG = "upstreams:\n  - project: github.com/acme/lib\n"


@pytest.fixture
def gitlab_settings(settings: Settings) -> Settings:
    gitlab = settings.forge(GitLabSettings).model_copy(
        update={"token": "glpat-bot-token-for-tests"}
    )
    return with_forge(settings, gitlab)


def expect_user(fake: FakeGitLab) -> None:
    fake.expect("GET", "/user", body={"id": 7, "username": "conjunction-bot"})


def expect_join(
    fake: FakeGitLab,
    path: str,
    *,
    level: int = 40,
    hooks: list[dict[str, Any]] | None = None,
) -> None:
    """What joining one project asks, up to the webhook list; the index reads follow."""
    project = f"/projects/{encoded(path)}"
    fake.expect_project(path)
    fake.expect("GET", f"{project}/members/all/7", body={"id": 7, "access_level": level})
    fake.expect("GET", f"{project}/hooks", body=hooks or [])


async def indexed(settings: Settings) -> dict[str, Any]:
    database = db.create_engine(settings.database_url)
    async with db.sessionmaker(database)() as session:
        rows = await session.scalars(select(Project))
        projects = {row.name: row.config for row in rows}
    await database.dispose()
    return projects


async def test_a_new_project_gets_one_webhook_and_is_indexed(
    gitlab_settings: Settings, fake_gitlab: FakeGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "group/sub/app"
    fake_gitlab.expect_project(path)
    expect_user(fake_gitlab)
    expect_join(fake_gitlab, path)
    fake_gitlab.expect("POST", f"/projects/{encoded(path)}/hooks", status=201, body={"id": 3})
    fake_gitlab.expect_index(path, CONFIG, project_info=False)

    code = await gitlab_add(gitlab_settings, f"gitlab.com/{path}", host=gitlab_host(fake_gitlab))

    assert code == 0
    assert capsys.readouterr().out == (
        "gitlab.com/group/sub/app: webhook created; indexed (1 upstream)\n"
    )
    [hook] = fake_gitlab.calls_to("POST", f"/projects/{encoded(path)}/hooks")
    assert hook.body["url"] == HOOK_URL
    assert hook.body["token"] == WEBHOOK_TOKEN
    assert (hook.body["push_events"], hook.body["pipeline_events"]) == (True, True)
    # comments carry commands; merge requests start pre-merge runs
    assert (hook.body["note_events"], hook.body["merge_requests_events"]) == (True, True)
    assert hook.body["enable_ssl_verification"] is True
    assert list(await indexed(gitlab_settings)) == ["gitlab.com/group/sub/app"]


async def test_an_existing_webhook_is_updated_and_duplicates_removed(
    gitlab_settings: Settings, fake_gitlab: FakeGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "acme/lib"
    project = f"/projects/{encoded(path)}"
    fake_gitlab.expect_project(path)
    expect_user(fake_gitlab)
    expect_join(
        fake_gitlab,
        path,
        hooks=[
            {"id": 3, "url": HOOK_URL},
            {"id": 4, "url": "https://ci.acme.dev/hook"},
            {"id": 5, "url": HOOK_URL},
        ],
    )
    fake_gitlab.expect("PUT", f"{project}/hooks/3", body={"id": 3})
    fake_gitlab.expect("DELETE", f"{project}/hooks/5", status=204)
    fake_gitlab.expect_index(path, None, project_info=False)

    assert await gitlab_add(gitlab_settings, path, host=gitlab_host(fake_gitlab)) == 0

    assert capsys.readouterr().out == (
        "gitlab.com/acme/lib: webhook updated; indexed (no .conjunction.yml on main: an upstream)\n"
    )
    [updated] = fake_gitlab.calls_to("PUT", f"{project}/hooks/3")
    assert (updated.body["url"], updated.body["token"]) == (HOOK_URL, WEBHOOK_TOKEN)
    # a hook made before commands existed hears of comments and merge requests from now on
    assert (updated.body["note_events"], updated.body["merge_requests_events"]) == (True, True)


async def test_missing_roles_are_named(
    gitlab_settings: Settings, fake_gitlab: FakeGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "acme/lib"
    fake_gitlab.expect_project(path)
    expect_user(fake_gitlab)
    expect_join(fake_gitlab, path, level=20)  # Reporter
    fake_gitlab.expect(
        "POST", f"/projects/{encoded(path)}/hooks", status=403, body={"message": "403 Forbidden"}
    )
    fake_gitlab.expect_index(path, CONFIG, project_info=False)

    assert await gitlab_add(gitlab_settings, path, host=gitlab_host(fake_gitlab)) == 1

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gitlab.com/acme/lib: indexed (1 upstream)"
    assert out[1] == (
        "  ! the bot account lacks the Developer role: Conjunction cannot post commit statuses "
        "on this project (as an upstream) or create its pipelines (as a downstream; on a "
        "protected branch that takes a role allowed to merge into it, Maintainer by default)"
    )
    assert out[2].startswith(
        "  ! no webhook: the bot account lacks the Maintainer role, which managing webhooks "
        f"needs. Add one by hand (Settings > Webhooks): URL {HOOK_URL}"
    )


async def test_a_developer_is_told_that_a_protected_branch_takes_more(
    gitlab_settings: Settings, fake_gitlab: FakeGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pipelines on a protected branch (the default branch is, by default) take a role allowed
    to merge into it, Maintainer by default: for a downstream, the Developer role may not do."""
    for path, config in (("acme/app", CONFIG), ("acme/lib", None)):
        fake_gitlab.expect_project(path)
        expect_user(fake_gitlab)
        expect_join(fake_gitlab, path, level=30, hooks=[{"id": 3, "url": HOOK_URL}])
        fake_gitlab.expect(
            "PUT",
            f"/projects/{encoded(path)}/hooks/3",
            status=403,
            body={"message": "403 Forbidden"},
        )
        fake_gitlab.expect_index(path, config, project_info=False)

    assert await gitlab_add(gitlab_settings, "acme/app", host=gitlab_host(fake_gitlab)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "gitlab.com/acme/app: indexed (1 upstream)",
        "  ! the bot account has the Developer role: if main is a protected branch (a default "
        "branch is, by default), creating pipelines on it needs a role allowed to merge into "
        "main: Maintainer, unless Developers are allowed to merge",
    ]
    assert out[2].startswith("  ! no webhook: the bot account lacks the Maintainer role")

    # an upstream only: commit statuses take the Developer role, nothing more is said
    assert await gitlab_add(gitlab_settings, "acme/lib", host=gitlab_host(fake_gitlab)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gitlab.com/acme/lib: indexed (no .conjunction.yml on main: an upstream)"
    assert [line for line in out if "Developer" in line] == []


async def test_a_group_adds_each_of_its_projects_with_a_progress_line(
    gitlab_settings: Settings, fake_gitlab: FakeGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_gitlab.expect_project("acme", status=404)
    fake_gitlab.expect("GET", "/groups/acme", body={"id": 5, "full_path": "acme"})
    fake_gitlab.expect(
        "GET",
        "/groups/5/projects",
        # projects shared into the group from elsewhere are not the group's to join
        query={"include_subgroups": "True", "archived": "False", "with_shared": "False"},
        body=[{"id": 1, "path_with_namespace": p} for p in ("acme/sub/app", "acme/lib")],
    )
    expect_user(fake_gitlab)
    for path in ("acme/lib", "acme/sub/app"):
        expect_join(fake_gitlab, path)
        fake_gitlab.expect("POST", f"/projects/{encoded(path)}/hooks", status=201, body={})
        fake_gitlab.expect_index(path, CONFIG, project_info=False)

    assert await gitlab_add(gitlab_settings, "acme", host=gitlab_host(fake_gitlab)) == 0

    assert capsys.readouterr().out.splitlines() == [
        "[1/2] gitlab.com/acme/lib: webhook created; indexed (1 upstream)",
        "[2/2] gitlab.com/acme/sub/app: webhook created; indexed (1 upstream)",
    ]


async def test_an_unknown_path_is_said_so(
    gitlab_settings: Settings, fake_gitlab: FakeGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_gitlab.expect_project("nobody/here", status=404)
    fake_gitlab.expect("GET", f"/groups/{encoded('nobody/here')}", status=404, body={})

    assert await gitlab_add(gitlab_settings, "nobody/here", host=gitlab_host(fake_gitlab)) == 1
    assert capsys.readouterr().out == (
        "conjunction: nobody/here is neither a project nor a group the bot account can see "
        "on gitlab.com\n"
    )


def test_without_a_token_the_command_says_what_to_set(
    no_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["gitlab", "add", "acme/lib"]) == 2
    assert capsys.readouterr().err == "conjunction: GitLab is not configured: set GITLAB_TOKEN\n"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"message": "401 Unauthorized"}),  # revoked or expired
        (403, {"error": "insufficient_scope", "scope": "api"}),  # a read_api token
    ],
)
async def test_a_token_gitlab_refuses_is_one_line_not_a_traceback(
    gitlab_settings: Settings,
    fake_gitlab: FakeGitLab,
    capsys: pytest.CaptureFixture[str],
    status: int,
    body: dict[str, Any],
) -> None:
    if status == 401:  # the fake refuses any other token with a 401
        host = gitlab_host(fake_gitlab, token="glpat-revoked")
    else:  # reading works; creating the webhook is refused
        path = "acme/lib"
        fake_gitlab.expect_project(path)
        expect_user(fake_gitlab)
        expect_join(fake_gitlab, path)
        fake_gitlab.expect("POST", f"/projects/{encoded(path)}/hooks", status=403, body=body)
        host = gitlab_host(fake_gitlab)

    assert await gitlab_add(gitlab_settings, "acme/lib", host=host) == 1

    assert capsys.readouterr().out == (
        "conjunction: GitLab refused GITLAB_TOKEN (revoked, expired, or without the api scope)\n"
    )
    assert fake_gitlab.calls[-1].status == status
