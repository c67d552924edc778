"""Project names are checked where they enter: the `token` command and `POST /api/v1/builds`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conjunction.app import main
from conjunction.names import project_name
from conjunction.tokens import create_project_token
from tests.conftest import runtime

LONG = "github.com/acme/" + "a" * 290


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("github.com/acme/lib", "github.com/acme/lib"),
        ("gitlab.com/group/sub/app", "gitlab.com/group/sub/app"),
        ("gitlab.example.com/x/y", "gitlab.example.com/x/y"),
        ("git.acme.dev/tools/cli", "git.acme.dev/tools/cli"),
        ("github.com/acme/.github", "github.com/acme/.github"),
        ("github.com/my_org/lib-2.0", "github.com/my_org/lib-2.0"),
        ("GitHub.com/Acme/Lib", "github.com/Acme/Lib"),
    ],
)
def test_valid_names(text: str, name: str) -> None:
    assert project_name(text) == name


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("github.com/../../etc", "'..' is not allowed"),
        ("github.com/acme/..", "'..' is not allowed"),
        ("github.com/acme/lib..x", "'..' is not allowed"),
        ("github.com//lib", "it has an empty path segment"),
        ("github.com/acme/", "it has an empty path segment"),
        ("github.com/acme//lib", "it has an empty path segment"),
        ("github.com/acme", "it needs a host and two path segments, like github.com/acme/lib"),
        ("github.com", "it needs a host and two path segments, like github.com/acme/lib"),
        ("acme/lib", "the host must be a domain like github.com"),
        ("", "the host must be a domain like github.com"),
        ("/acme/lib", "the host must be a domain like github.com"),
        ("github.com:22/acme/lib", "the host must be a domain like github.com"),
        (LONG, "longer than 300 characters"),
        ("github.com/acme/-rf", "'-rf' is not a path segment"),
        ("github.com/./lib", "'.' is not a path segment"),
        ("github.com/acme/my lib", "'my lib' is not a path segment"),
        ("github.com/acme/lib\x00", "'lib\\x00' is not a path segment"),
        ("github.com/acme/lib?x=1", "'lib?x=1' is not a path segment"),
    ],
)
def test_invalid_names_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        project_name(text)
    assert str(caught.value).startswith(f"not a project name: {reason}")


def test_the_longest_name_is_accepted() -> None:
    name = "github.com/acme/" + "a" * 284
    assert len(name) == 300
    assert project_name(name) == name


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.db"
    monkeypatch.setenv("CONJUNCTION_DATABASE_URL", f"sqlite:///{path}")
    return path


@pytest.mark.parametrize(
    "command", [["create"], ["create", "--name", "ci"], ["list"], ["revoke", "token-1"]]
)
def test_token_command_refuses_a_bad_name(
    command: list[str], database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", command[0], "github.com/../../etc", *command[1:]]) == 2
    output = capsys.readouterr()
    assert output.err == (
        "conjunction: 'github.com/../../etc' is not a project name: '..' is not allowed\n"
    )
    assert output.out == ""
    assert not database.exists(), "nothing is stored"


def test_token_command_takes_nested_gitlab_paths(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "gitlab.com/group/sub/app"]) == 0
    assert capsys.readouterr().out.startswith("cjp_")
    assert main(["token", "revoke", "gitlab.com/group/sub/app", "token-1"]) == 0
    assert capsys.readouterr().out.startswith("revoked token token-1 (cjp_")


async def post_build(client: TestClient[Any, Any], token: str, project: str) -> Any:
    body = {"project": project, "sha": "a" * 40, "ref": "refs/heads/main", "result": "success"}
    return await client.post(
        "/api/v1/builds", json=body, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.parametrize(
    ("project", "error"),
    [
        ("github.com/../../etc", "project: not a project name: '..' is not allowed"),
        ("github.com/acme//lib", "project: not a project name: it has an empty path segment"),
        (LONG, "project: not a project name: longer than 300 characters"),
    ],
)
async def test_builds_api_refuses_a_bad_name(
    client: TestClient[Any, Any], project: str, error: str
) -> None:
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, "github.com/acme/lib")
    answer = await post_build(client, token, project)
    assert answer.status == 422
    assert await answer.json() == {"error": error}


async def test_builds_api_takes_nested_gitlab_paths(client: TestClient[Any, Any]) -> None:
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, "gitlab.com/group/sub/app")
    answer = await post_build(client, token, "gitlab.com/group/sub/app")
    assert answer.status == 202
    event = await client.get(f"/api/v1/events/{(await answer.json())['event_id']}")
    assert (await event.json())["project"] == "gitlab.com/group/sub/app"
