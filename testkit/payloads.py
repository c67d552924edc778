"""GitHub's and GitLab's documented payloads, kept as fixtures in `tests/fixtures/`, and a
`workflow_run` pointed at one repository and run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def workflow_run(
    full_name: str,
    sha: str,
    *,
    conclusion: str = "success",
    branch: str = "main",
    name: str = "CI",
    run_id: int = 1,
    event: str = "push",
    title: str = "",
) -> dict[str, Any]:
    """GitHub's documented workflow_run.completed example, pointed at one repository and run."""
    payload = fixture("github/workflow_run.completed.json")
    run = payload["workflow_run"]
    run.update(
        id=run_id,
        head_sha=sha,
        head_branch=branch,
        conclusion=conclusion,
        name=name,
        event=event,
        display_title=title or name,
        html_url=f"https://github.com/{full_name}/actions/runs/{run_id}",
    )
    payload["repository"]["full_name"] = full_name
    payload["repository"]["name"] = full_name.split("/")[1]
    return payload
