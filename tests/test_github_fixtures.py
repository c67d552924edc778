"""The webhook fixtures carry what the handlers read, and reach the handlers they are for."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from gidgethub.sansio import Event

from conjunction.forges.github.events import router

FIXTURES = Path(__file__).parent / "fixtures" / "github"
SHA = re.compile(r"^[0-9a-f]{40}$")
FULL_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")

# What the handlers read from each event's own object (dotted paths), and its type.
REQUIRED: dict[str, dict[str, type]] = {
    "push": {"ref": str, "after": str, "commits": list, "head_commit": dict},
    "workflow_run": {
        "workflow_run.id": int,
        "workflow_run.head_sha": str,
        "workflow_run.head_branch": str,
        "workflow_run.conclusion": str,
        "workflow_run.event": str,
        "workflow_run.name": str,
        "workflow_run.html_url": str,
    },
    "check_suite": {
        "check_suite.head_sha": str,
        "check_suite.head_branch": str,
        "check_suite.conclusion": str,
        "check_suite.app.name": str,
    },
    "check_run": {"check_run.id": int, "check_run.head_sha": str},
    "status": {"sha": str, "state": str, "context": str, "branches": list},
    "installation": {"installation.id": int},
    "installation_repositories": {
        "installation.id": int,
        "repositories_added": list,
        "repositories_removed": list,
    },
    "pull_request": {"number": int, "pull_request.head.sha": str},
    "issue_comment": {
        "issue.number": int,
        "comment.id": int,
        "comment.body": str,
        "comment.user.login": str,
    },
    "ping": {"zen": str, "hook_id": int},
}
COMMIT = {  # where each event names its commit
    "push": "after",
    "workflow_run": "workflow_run.head_sha",
    "check_suite": "check_suite.head_sha",
    "check_run": "check_run.head_sha",
    "status": "sha",
    "pull_request": "pull_request.head.sha",
}
# an edited comment is not a new command
UNHANDLED = {
    "check_run.completed.json",
    "issue_comment.edited.json",
    "ping.json",
}


def load_fixtures() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))}


FIXTURE_DATA = load_fixtures()


def dig(data: Any, path: str) -> Any:
    for key in path.split("."):
        assert isinstance(data, dict) and key in data, f"no {path}"
        data = data[key]
    return data


def event_of(name: str) -> tuple[str, str | None]:
    event, _, action = name.removesuffix(".json").partition(".")
    return event, action or None


@pytest.mark.parametrize("name", sorted(FIXTURE_DATA))
def test_fixture_carries_what_its_handler_reads(name: str) -> None:
    data = FIXTURE_DATA[name]
    event, action = event_of(name)
    assert data.get("action") == action
    for path, kind in REQUIRED[event].items():
        assert isinstance(dig(data, path), kind), path
    if event in COMMIT:
        assert SHA.match(dig(data, COMMIT[event]))
    if "repository" in data:
        assert FULL_NAME.match(dig(data, "repository.full_name"))
        assert isinstance(dig(data, "repository.private"), bool)
    if event == "push":
        assert isinstance(dig(data, "repository.default_branch"), str)
    for repository in [
        *data.get("repositories", []),
        *data.get("repositories_added", []),
        *data.get("repositories_removed", []),
    ]:
        assert FULL_NAME.match(repository["full_name"])
        assert isinstance(repository["private"], bool)


@pytest.mark.parametrize("name", sorted(FIXTURE_DATA))
def test_fixture_reaches_a_handler_unless_the_event_is_ignored(name: str) -> None:
    event, _ = event_of(name)
    handlers = router.fetch(Event(FIXTURE_DATA[name], event=event, delivery_id="x"))
    assert bool(handlers) == (name not in UNHANDLED)


def test_the_fixtures_cover_the_described_events() -> None:
    assert len(FIXTURE_DATA) >= 16
    assert {event_of(name)[0] for name in FIXTURE_DATA} == set(REQUIRED)


def test_fixtures_without_installation():
    """These example payloads carry no `installation` key; handlers must cope."""
    missing = sorted(name for name, data in FIXTURE_DATA.items() if "installation" not in data)
    assert missing == [
        "check_run.completed.json",
        "check_suite.completed.json",
        "issue_comment.edited.json",
        "ping.json",
        "workflow_run.completed.json",
    ]
