"""The check run that reports the state of `.conjunction.yml` on the commit that changed it."""

from __future__ import annotations

from typing import Any

from gidgethub.abc import GitHubAPI

from bot.engine import CONFIG_PATH
from bot.forges.github.forge import CHECK_SUMMARY_LIMIT
from bot.report import escape
from config.repo_config import ConfigError, ConfigProblem

CONFIG_CHECK_NAME = f"Conjunction: {CONFIG_PATH}"
ANNOTATIONS_PER_CALL = 50  # GitHub's limit for one create or update
KEPT = "The last valid configuration stays in force."
VALID_SUMMARY = f"Conjunction follows this `{CONFIG_PATH}` from this commit on."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _item(problem: ConfigProblem) -> str:
    where = [f"line {problem.line}"] if problem.line is not None else []
    if problem.field:
        where.append("`" + problem.field.replace("`", "'") + "`")
    prefix = ", ".join(where)
    return f"- {prefix}: {escape(problem.message)}" if prefix else f"- {escape(problem.message)}"


def _summary(error: ConfigError) -> str:
    items = "\n".join(_item(problem) for problem in error.problems)
    if len(items) > CHECK_SUMMARY_LIMIT - 200:
        items = items[: CHECK_SUMMARY_LIMIT - 200] + "…"
    return f"{items}\n\n{KEPT}"


def _annotation(problem: ConfigProblem) -> dict[str, Any]:
    line = problem.line or 1
    return {
        "path": CONFIG_PATH,
        "start_line": line,
        "end_line": line,
        "annotation_level": "failure",
        "message": f"{problem.field}: {problem.message}" if problem.field else problem.message,
    }


async def post_config_check(
    gh: GitHubAPI, repository: str, sha: str, error: ConfigError | None
) -> None:
    """A completed check run on sha of `owner/repo`: failing with the problems, else passing.

    `gh` is the installation's policy client (`bot.forges.github.client`), so these calls
    are paced and retried like every other.
    """
    owner, _, repo = repository.partition("/")
    url_vars = {"owner": owner, "repo": repo}
    check = {"name": CONFIG_CHECK_NAME, "head_sha": sha, "status": "completed"}
    if error is None:
        output = {"title": f"Valid {CONFIG_PATH}", "summary": VALID_SUMMARY}
        await gh.post(
            "/repos/{owner}/{repo}/check-runs",
            url_vars,
            data={**check, "conclusion": "success", "output": output},
        )
        return
    output = {
        "title": f"Invalid {CONFIG_PATH}: {_plural(len(error.problems), 'problem')}",
        "summary": _summary(error),
    }
    annotations = [_annotation(problem) for problem in error.problems]
    batches = [
        annotations[start : start + ANNOTATIONS_PER_CALL]
        for start in range(0, len(annotations), ANNOTATIONS_PER_CALL)
    ] or [[]]
    created = await gh.post(
        "/repos/{owner}/{repo}/check-runs",
        url_vars,
        data={**check, "conclusion": "failure", "output": {**output, "annotations": batches[0]}},
    )
    for batch in batches[1:]:
        await gh.patch(
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            {**url_vars, "check_run_id": created["id"]},
            data={"output": {**output, "annotations": batch}},
        )
