"""What the check run on a commit that changed `.conjunction.yml` says: valid, or its problems."""

from __future__ import annotations

from typing import Any

from conjunction.config.repo_config import ConfigError, ConfigProblem
from conjunction.engine_api import CONFIG_PATH
from conjunction.texts import render

CONFIG_CHECK_NAME = f"Conjunction: {CONFIG_PATH}"
ANNOTATIONS_PER_CALL = 50  # GitHub's limit for one create or update
SUMMARY_LIMIT = 65_000


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _annotation(problem: ConfigProblem) -> dict[str, Any]:
    line = problem.line or 1
    return {
        "path": CONFIG_PATH,
        "start_line": line,
        "end_line": line,
        "annotation_level": "failure",
        "message": f"{problem.field}: {problem.message}" if problem.field else problem.message,
    }


def config_check_outputs(error: ConfigError | None) -> list[dict[str, Any]]:
    """The check run's `output` for its creation, then one per further batch of annotations."""
    if error is None:
        return [
            {
                "title": f"Valid {CONFIG_PATH}",
                "summary": render("config_valid.md", path=CONFIG_PATH),
            }
        ]
    summary = render("config_problems.md", problems=error.problems)
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    output = {
        "title": f"Invalid {CONFIG_PATH}: {_plural(len(error.problems), 'problem')}",
        "summary": summary,
    }
    annotations = [_annotation(problem) for problem in error.problems]
    batches = [
        annotations[start : start + ANNOTATIONS_PER_CALL]
        for start in range(0, len(annotations), ANNOTATIONS_PER_CALL)
    ] or [[]]
    return [{**output, "annotations": batch} for batch in batches]
