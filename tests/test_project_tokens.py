"""Project tokens as people and CI systems use them: `token create|list|revoke` and
`POST /api/v1/builds` with several named tokens per project."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from alembic import command as alembic
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from conjunction import db
from conjunction.app import main
from conjunction.config.settings import Settings
from conjunction.tokens import list_project_tokens
from tests.test_flow import LIB, SHA
from tests.test_webhook_runner import stored

BUILD = {"project": LIB, "sha": SHA, "ref": "main", "result": "failure"}
ROW = re.compile(
    r"^(\S+)\s+(cjp_\S{6})…\s+(\d{4}-\d\d-\d\d \d\d:\d\d)\s+(never|\d{4}\S+ \S+)\s+(.+)$"
)


@pytest.fixture
def command(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_env: None,
) -> Any:
    """`python app.py ARGS` on the test app's database: (exit code, output, errors)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONJUNCTION_DATABASE_URL", settings.database_url)

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def report(client: TestClient[Any, Any], token: str) -> int:
    answer = await client.post(
        "/api/v1/builds", json=BUILD, headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status


def listed(output: str) -> dict[str, tuple[str, ...]]:
    """`token list` rows by name: (prefix, created, last used, state)."""
    rows = {}
    for line in output.splitlines()[1:]:
        match = ROW.match(line)
        assert match, line
        rows[match[1]] = match.groups()[1:]
    return rows


async def test_several_named_tokens_each_used_and_revoked_on_its_own(
    client: TestClient[Any, Any], command: Any, tmp_path: Path
) -> None:
    code, out, _ = await command("token", "create", LIB, "--name", "jenkins")
    assert code == 0
    jenkins, note = out.splitlines()
    assert note == f"Keep it secret: token jenkins reports builds of {LIB} and is shown only once."
    code, out, _ = await command("token", "create", LIB)
    other = out.splitlines()[0]
    assert code == 0 and "token token-2 reports" in out

    code, out, _ = await command("token", "list", LIB)
    assert out.splitlines()[0].split() == ["name", "token", "created", "last", "used", "state"]
    rows = listed(out)
    assert set(rows) == {"jenkins", "token-2"}
    assert rows["jenkins"][0] == jenkins[:10]
    assert (rows["jenkins"][2], rows["jenkins"][3]) == ("never", "active")
    assert jenkins not in out and other not in out

    assert await report(client, jenkins) == 202
    rows = listed((await command("token", "list", LIB))[1])
    assert rows["jenkins"][2] != "never" and rows["token-2"][2] == "never"

    code, out, _ = await command("token", "revoke", LIB, "jenkins")
    assert (code, out) == (0, f"revoked token jenkins ({jenkins[:10]}…) of {LIB}\n")
    assert await report(client, jenkins) == 401
    assert await report(client, other) == 202, "the other token stays valid"
    rows = listed((await command("token", "list", LIB))[1])
    assert rows["jenkins"][3].startswith("revoked ") and rows["token-2"][3] == "active"

    code, out, _ = await command("token", "revoke", LIB, other[:8])
    assert (code, out) == (0, f"revoked token token-2 ({other[:10]}…) of {LIB}\n")
    assert await report(client, other) == 401

    database = "".join(stored(tmp_path))
    assert jenkins not in database and other not in database


async def test_token_command_errors(command: Any) -> None:
    await command("token", "create", LIB, "--name", "ci")
    assert await command("token", "create", LIB, "--name", "ci") == (
        1,
        "",
        f"conjunction: {LIB} already has a token named ci: revoke it or pick another\n",
    )
    assert await command("token", "create", LIB, "--name", "no spaces") == (
        1,
        "",
        "conjunction: 'no spaces' is not a token name: up to 100 letters, digits, '.', '_' "
        "and '-'\n",
    )
    assert await command("token", "revoke", LIB, "jenkins") == (
        1,
        "",
        f"conjunction: {LIB} has no live token named or starting with 'jenkins'\n",
    )
    await command("token", "create", LIB, "--name", "ci-2")
    assert (await command("token", "revoke", LIB, "cjp_"))[0] == 1

    code, out, _ = await command("token", "list")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["project", "name"]
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [[LIB, "ci"], [LIB, "ci-2"]]


async def test_tokens_made_before_names_are_named_by_their_prefix(database_url: str) -> None:
    """Migration 0003 on a database that holds a token already (both databases)."""
    database = db.create_engine(database_url)
    try:
        async with database.begin() as connection:
            await connection.run_sync(upgrade_to, "0002")
            await connection.execute(
                text(
                    "INSERT INTO project_tokens (project, token_hash, prefix, created_at) "
                    "VALUES ('github.com/acme/lib', :hash, 'cjp_AbCdEf', CURRENT_TIMESTAMP)"
                ),
                {"hash": "0" * 64},
            )
        await db.migrate(database)
        async with db.sessionmaker(database)() as session:
            [token] = await list_project_tokens(session, LIB)
        assert (token.name, token.prefix, token.last_used_at) == ("cjp_AbCdEf", "cjp_AbCdEf", None)
    finally:
        await database.dispose()


def upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.attributes["connection"] = connection
    alembic.upgrade(config, revision)
