"""Logs are JSON lines carrying the context handlers pass in `extra`, or text for people; a
real server logging at DEBUG writes none of the credentials it holds or hands out."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conjunction.logs import JsonFormatter, configure
from testkit.fleet import (
    SECRET_KEY,
    SIGNER,
    UPSTREAM,
    Fleet,
    database_url,
    dead_jobs,
    post,
    server_env,
    status_post,
    unfinished_jobs,
    wait_for,
)
from testkit.github_server import GitHubServer
from testkit.keys import PRIVATE_KEY_PEM
from testkit.server_process import ROOT, ServerProcess
from testkit.signing import WEBHOOK_SECRET


def test_json_line_with_context() -> None:
    record = logging.LogRecord("conjunction", logging.INFO, __file__, 1, "got %s", ("push",), None)
    record.delivery_id = "d-1"
    record.installation_id = 42
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "got push"
    assert entry["level"] == "info"
    assert (entry["delivery_id"], entry["installation_id"]) == ("d-1", 42)
    assert "args" not in entry and "msg" not in entry


def test_exceptions_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, given back as it was: `configure` replaces its handlers."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_level_and_text_format(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("warning", "text")
    logging.getLogger("conjunction").info("not shown")
    logging.getLogger("conjunction").warning("shown %s", "as text")
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING conjunction: shown as text")


def test_json_format(root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure("debug", "json")
    logging.getLogger("conjunction").debug("shown", extra={"delivery_id": "d-2"})
    entry = json.loads(capsys.readouterr().err)
    assert (entry["level"], entry["message"], entry["delivery_id"]) == ("debug", "shown", "d-2")


# -- no secret in the logs of a real server at DEBUG -----------------------------------------

ADMIN_TOKEN = "admin-token-" + "5e" * 16
SHA = "5ec7e7" + "0" * 34


def get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def searchable(log: str) -> str:
    """The log as written, and each JSON line's values decoded (a value JSON escapes, such as a
    key's line breaks, is found in either)."""
    decoded = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            decoded += [str(value) for value in json.loads(line).values()]
    return log + "\n" + "\n".join(decoded)


def create_token(server: ServerProcess) -> tuple[str, str]:
    """`python app.py token create` on the server's database: the token, and what the command
    wrote to its standard error (its log)."""
    made = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "token", "create", UPSTREAM, "--name", "ci"],
        cwd=server.directory,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return made.stdout.splitlines()[0], made.stderr


@pytest.mark.faults
def test_no_credential_reaches_the_log_of_a_server_at_debug(tmp_path: Path) -> None:
    """A real `python app.py` at LOG_LEVEL=debug, every library's logging included, through a
    flow that uses every credential it holds or hands out: the webhook secret (deliveries
    signed), the app's private key (JWTs for installation tokens), installation tokens (the
    dispatches, statuses and check runs), the admin token (Bearer and /login), a project token
    (`token create`, then the builds API), callback tokens (the status API, in the header and in
    `?token=`, and one posted to another event). None of their values is in the log."""
    fleet = Fleet(3)
    database = database_url("sqlite", tmp_path)
    fleet.seed(database)
    with GitHubServer() as github:
        env = {
            **server_env(github.url, database),
            "LOG_LEVEL": "debug",
            "CONJUNCTION_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        with ServerProcess(tmp_path, env) as server:
            project_token, command_log = create_token(server)
            assert post(f"{server.url}/webhooks/github", *fleet.upstream_success(SHA)) == 202
            wait_for(lambda: len(github.dispatches) == fleet.size, 60, "every downstream started")
            first, second, third = github.dispatches
            callbacks = [SIGNER.token(dispatch.event_id) for dispatch in github.dispatches]
            status_url = f"{server.url}/api/v1/events/{{}}/status"

            # callback tokens: in the header, in the query, and one for another event
            assert post(status_url.format(first.event_id), *status_post(first.event_id)) == 202
            body, headers = status_post(second.event_id)
            del headers["Authorization"]
            query = f"?token={SIGNER.token(second.event_id)}"
            assert post(status_url.format(second.event_id) + query, body, headers) == 202
            body, headers = status_post(first.event_id)
            assert post(status_url.format(third.event_id), body, headers) == 401
            assert post(f"{server.url}/webhooks/github", *fleet.downstream_run(third)) == 202

            # a project token through the builds API
            build = {"project": UPSTREAM, "sha": "b" * 40, "ref": "main", "result": "success"}
            project_headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {project_token}",
            }
            builds_url = f"{server.url}/api/v1/builds"
            assert post(builds_url, json.dumps(build).encode(), project_headers) == 202

            # the admin token, as a bearer and through the login form
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            assert get(f"{server.url}/", admin) == 200
            login = urllib.parse.urlencode({"token": ADMIN_TOKEN, "next": "/"}).encode()
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            assert post(f"{server.url}/login", login, form) == 200  # redirected to /

            wait_for(lambda: unfinished_jobs(server) == 0, 60, "every job done")
            assert dead_jobs(server) == []
            assert server.terminate() == 0
        used_with_github = {call.authorization for call in github.calls} - {""}
    log = server.log()

    assert '"level": "debug"' in log  # the server did log at DEBUG
    assert {value.split(" ", 1)[0].lower() for value in used_with_github} == {"bearer", "token"}
    credentials = {
        "the webhook secret": WEBHOOK_SECRET,
        "the secret key": SECRET_KEY,
        "the admin token": ADMIN_TOKEN,
        "the project token": project_token,
        **{f"callback token {number}": token for number, token in enumerate(callbacks)},
        **{
            f"line {number} of the private key": line
            for number, line in enumerate(PRIVATE_KEY_PEM.splitlines())
            if line and not line.startswith("-----")
        },
    }
    # the app's JWTs and the installation tokens, as GitHub received them
    for number, value in enumerate(sorted(used_with_github)):
        scheme, credential = value.split(" ", 1)
        kind = "an app JWT" if scheme.lower() == "bearer" else "an installation token"
        credentials[f"{kind} ({number})"] = credential
    for where, text in (("the server's log", searchable(log)), ("token create", command_log)):
        # the fake's installation tokens are short (token-1, token-100): whole values only
        found = [
            name
            for name, value in credentials.items()
            if re.search(rf"{re.escape(value)}(?![\w-])", text)
        ]
        assert found == [], f"{where} holds {', '.join(found)}"
