"""`python app.py gitea add` and the Gitea settings: one webhook created or updated, the
repository indexed, what the person running it reads, and the calls Gitea receives."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from conjunction import db
from conjunction.app import create_app, main
from conjunction.config.settings import Settings, SettingsError, settings_from
from conjunction.forges.gitea.command import gitea_add
from conjunction.forges.gitea.host import GiteaHost
from conjunction.forges.gitea.settings import GiteaSettings
from conjunction.models import Project
from conjunction.web.context import RUNTIME
from tests.fakegitea import WEBHOOK_SECRET, FakeGitea, gitea_host, repo_path

HOOK_URL = "https://conjunction.test/webhooks/gitea"
CONFIG = "upstreams:\n  - project: github.com/acme/lib\ntrigger:\n  workflow: ci.yml\n"
GITEA = {
    "GITEA_URL": "https://codeberg.org",
    "GITEA_TOKEN": "t",
    "GITEA_WEBHOOK_SECRET": "s",
}


def expect_user(fake: FakeGitea) -> None:
    fake.expect("GET", "/user", body={"id": 7, "login": "conjunction-bot"})


def expect_join(
    fake: FakeGitea,
    path: str,
    *,
    hooks: list[dict[str, Any]] | None = None,
    permissions: dict[str, bool] | None = None,
) -> None:
    """What joining one repository asks, up to the webhook list; the index reads follow."""
    fake.expect_repo(path, permissions=permissions)
    fake.expect("GET", f"{repo_path(path)}/hooks", body=hooks or [])


async def indexed(settings: Settings) -> dict[str, Any]:
    database = db.create_engine(settings.database_url)
    async with db.sessionmaker(database)() as session:
        rows = await session.scalars(select(Project))
        projects = {row.name: row.config for row in rows}
    await database.dispose()
    return projects


async def test_a_new_repository_gets_one_webhook_and_is_indexed(
    gitea_settings: Settings, fake_gitea: FakeGitea, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "acme/app"
    expect_user(fake_gitea)
    fake_gitea.expect_repo(path)
    expect_join(fake_gitea, path)
    fake_gitea.expect("POST", f"{repo_path(path)}/hooks", status=201, body={"id": 3})
    fake_gitea.expect_index(path, CONFIG, repo_info=False)

    code = await gitea_add(gitea_settings, f"codeberg.org/{path}", host=gitea_host(fake_gitea))

    assert code == 0
    assert (
        capsys.readouterr().out == "codeberg.org/acme/app: webhook created; indexed (1 upstream)\n"
    )
    [hook] = fake_gitea.calls_to("POST", f"{repo_path(path)}/hooks")
    assert hook.body == {
        "type": "gitea",
        "config": {
            "url": HOOK_URL,
            "content_type": "json",
            "http_method": "post",
            "secret": WEBHOOK_SECRET,
        },
        "events": [
            "push",
            "status",
            "workflow_run",
            "action_run_success",
            "action_run_failure",
            "action_run_recover",
            "pull_request",
            "issue_comment",
        ],
        "active": True,
    }
    assert list(await indexed(gitea_settings)) == ["codeberg.org/acme/app"]


async def test_running_it_again_updates_the_webhook_and_removes_duplicates(
    gitea_settings: Settings, fake_gitea: FakeGitea, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "acme/lib"
    hooks = [
        {"id": 4, "config": {"url": "https://elsewhere.test/hook"}},
        {"id": 5, "config": {"url": HOOK_URL, "content_type": "json"}},
        {"id": 6, "config": {"url": HOOK_URL, "content_type": "json"}},
    ]
    expect_user(fake_gitea)
    fake_gitea.expect_repo(path)
    expect_join(fake_gitea, path, hooks=hooks)
    fake_gitea.expect("PATCH", f"{repo_path(path)}/hooks/5", body={"id": 5})
    fake_gitea.expect("DELETE", f"{repo_path(path)}/hooks/6", status=204)
    fake_gitea.expect_index(path, None, repo_info=False)

    assert await gitea_add(gitea_settings, path, host=gitea_host(fake_gitea)) == 0
    assert capsys.readouterr().out == (
        "codeberg.org/acme/lib: webhook updated; indexed (no .conjunction.yml on main: "
        "an upstream)\n"
    )
    [patch] = fake_gitea.calls_to("PATCH", f"{repo_path(path)}/hooks/5")
    assert set(patch.body) == {"config", "events", "active"}
    assert patch.body["config"]["secret"] == WEBHOOK_SECRET


async def test_every_repository_of_an_owner_and_what_the_bot_may_not_do(
    gitea_settings: Settings, fake_gitea: FakeGitea, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_user(fake_gitea)
    fake_gitea.expect("GET", "/orgs/acme/repos", status=404, body={"message": "not found"})
    fake_gitea.expect(
        "GET",
        "/users/acme/repos",
        query={"page": 1, "limit": 50},
        body=[
            {"full_name": "acme/old", "archived": True},
            {"full_name": "acme/app", "archived": False},
            {"full_name": "acme/lib", "archived": False},
        ],
    )
    reader = {"admin": False, "push": False, "pull": True}
    expect_join(fake_gitea, "acme/app", permissions=reader)
    fake_gitea.expect(
        "POST", f"{repo_path('acme/app')}/hooks", status=403, body={"message": "forbidden"}
    )
    fake_gitea.expect_index("acme/app", CONFIG, repo_info=False)
    expect_join(fake_gitea, "acme/lib")
    fake_gitea.expect("POST", f"{repo_path('acme/lib')}/hooks", status=201, body={"id": 1})
    fake_gitea.expect_index("acme/lib", None, repo_info=False)

    assert await gitea_add(gitea_settings, "acme", host=gitea_host(fake_gitea)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[1/2] codeberg.org/acme/app: indexed (1 upstream)"
    assert lines[1].startswith("  ! the bot account has no write access")
    assert "or start its workflows (as a downstream)" in lines[1]
    assert lines[2].startswith("  ! no webhook: the bot account is no administrator")
    assert f"target URL {HOOK_URL}" in lines[2]
    assert lines[3] == (
        "[2/2] codeberg.org/acme/lib: webhook created; indexed (no .conjunction.yml on main: "
        "an upstream)"
    )


async def test_a_refused_token_stops_it_with_one_line(
    gitea_settings: Settings, fake_gitea: FakeGitea, capsys: pytest.CaptureFixture[str]
) -> None:
    host = gitea_host(fake_gitea, token="revoked")
    assert await gitea_add(gitea_settings, "acme/app", host=host) == 1
    assert capsys.readouterr().out == (
        "conjunction: codeberg.org refused GITEA_TOKEN (revoked or expired)\n"
    )


async def test_an_unknown_repository_is_said(
    gitea_settings: Settings, fake_gitea: FakeGitea, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_user(fake_gitea)
    fake_gitea.expect_repo("acme/nope", status=404)
    assert await gitea_add(gitea_settings, "acme/nope", host=gitea_host(fake_gitea)) == 1
    assert "acme/nope is no repository the bot account can see" in capsys.readouterr().out


def test_without_gitea_the_command_says_what_to_set(
    no_env: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["gitea", "add", "acme/app"]) == 2
    assert "Gitea is not configured: set GITEA_URL, GITEA_TOKEN and GITEA_WEBHOOK_SECRET" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            ["GITEA_TOKEN"],
            "Gitea half configured: GITEA_TOKEN is set but GITEA_URL and GITEA_WEBHOOK_SECRET "
            "are missing",
        ),
        (
            ["GITEA_URL", "GITEA_TOKEN"],
            "Gitea half configured: GITEA_URL and GITEA_TOKEN are set but GITEA_WEBHOOK_SECRET "
            "is missing",
        ),
        (
            ["GITEA_URL"],
            "Gitea half configured: GITEA_URL is set but GITEA_TOKEN and GITEA_WEBHOOK_SECRET "
            "are missing",
        ),
    ],
)
def test_a_half_configured_gitea_stops_start_up_with_one_line(given: list[str], line: str) -> None:
    with pytest.raises(SettingsError) as exc:
        settings_from({name: GITEA[name] for name in given})
    assert str(exc.value) == line


def test_the_host_in_project_names_is_the_url_s_unless_set() -> None:
    settings = settings_from(GITEA)
    gitea = settings.forge(GiteaSettings)
    assert gitea.enabled and gitea.host == "codeberg.org"
    settings = settings_from(
        GITEA | {"GITEA_URL": "https://git.internal:3000/gitea/", "GITEA_HOST": "Git.Acme.Dev"}
    )
    gitea = settings.forge(GiteaSettings)
    assert (gitea.url, gitea.host) == (
        "https://git.internal:3000/gitea",
        "git.acme.dev",
    )
    assert not settings_from({}).forge(GiteaSettings).enabled


async def test_gitea_alone_is_wired_from_settings(aiohttp_client: Any, tmp_path: Any) -> None:
    """With only a Gitea bot account configured: its code host serves codeberg.org, its
    deliveries have a job, and the dashboard replaces the GitHub App setup."""
    settings = settings_from(
        GITEA
        | {
            "CONJUNCTION_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
            "CONJUNCTION_SECRET_KEY": "a-secret-key-for-the-tests",
        }
    )
    client = await aiohttp_client(create_app(settings, env_path=tmp_path / ".env"))
    runtime = client.app[RUNTIME]
    assert isinstance(runtime.engine.adapters.host("codeberg.org/acme/lib"), GiteaHost)
    assert runtime.engine.adapters.host("github.com/acme/lib") is None
    assert "gitea_delivery" in runtime.intake.job_kinds
    page = await client.get("/")
    assert "/setup?code=" not in await page.text()
