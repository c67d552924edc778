"""`python app.py demo`: the simulated ecosystem's driver, and the simulated forge's own pages —
its runs, commits with the statuses and check runs Conjunction posted, issues and compare views.

Private projects' pages on the simulated forge exist only for the admin, as on the dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

from conjunction.demo import Ecosystem
from conjunction.models import utcnow
from conjunction.web.admin import is_admin
from conjunction.web.context import RUNTIME, json_error
from conjunction.web.templating import render

ECOSYSTEM = web.AppKey("ecosystem", Ecosystem)
_HIDDEN_MARKERS = re.compile(r"<!--.*?-->", re.DOTALL)
# The emoji in the texts the bot posts, drawn as the dashboard's icons of the same meaning: the
# simulated forge's pages need no emoji font to show a check summary.
EMOJI_ICONS = {
    "✅": "passed",
    "🎉": "passed",
    "❌": "failed",
    "⛔": "failed",
    "⚠": "error",
    "⌛": "timed_out",
    "⏹": "cancelled",
    "⏭": "skipped",
    "⏳": "running",
    "🔁": "running",
    "🔎": "running",
}
_EMOJI = re.compile(f"([{''.join(EMOJI_ICONS)}])\ufe0f?")


def markdown(env: jinja2.Environment) -> Callable[[str], Markup]:
    """A text the bot posted, as the forge would show it (raw HTML is never passed through),
    its emoji drawn by the `icon` macro of the dashboard's templates."""
    parser = MarkdownIt("commonmark", {"html": False, "linkify": True}).enable(["table", "linkify"])

    def text(_renderer: Any, tokens: Sequence[Token], index: int, *_: Any) -> str:
        icon = env.get_template("macros.html").module.icon  # type: ignore[attr-defined]
        parts = _EMOJI.split(tokens[index].content)  # text, emoji, text, emoji, …, text
        return "".join(
            str(icon(EMOJI_ICONS[part]) if odd else escape(part))
            for odd, part in ((n % 2 == 1, part) for n, part in enumerate(parts))
        )

    parser.add_render_rule("text", text)
    return lambda posted: Markup(parser.render(_HIDDEN_MARKERS.sub("", posted)))


def install(app: web.Application, ecosystem: Ecosystem, *, drive: bool = True) -> None:
    """Add the simulated forge's pages, and drive the ecosystem while the app runs (tests that
    move it step by step pass `drive=False`)."""
    app[ECOSYSTEM] = ecosystem
    app.add_routes(routes)
    env = aiohttp_jinja2.get_env(app)
    env.filters["markdown"] = markdown(env)
    env.globals["forge_link"] = "/demo"
    if not drive:
        return

    async def driving(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        await ecosystem.index(runtime.engine.refresh_project)
        task = asyncio.create_task(
            ecosystem.run(
                runtime.engine.pipeline_finished,
                runtime.worker.wakeup.set,
                runtime.engine.change_updated,
            ),
            name="demo",
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(driving)


routes = web.RouteTableDef()


def _visible(request: web.Request, project: str) -> bool:
    return project not in request.app[ECOSYSTEM].forge.private or is_admin(request)


@routes.get("/demo")
async def forge_home(request: web.Request) -> web.Response:
    forge = request.app[ECOSYSTEM].forge
    projects = [name for name in forge.commits if _visible(request, name)]
    return render(
        request,
        "demo/index.html",
        title="Simulated forge",
        projects=[
            {
                "name": name,
                "private": name in forge.private,
                "config": forge.files.get((name, ".conjunction.yml")),
                "commits": list(reversed(forge.commits[name][-5:])),
            }
            for name in projects
        ],
        reports=forge.reports,
        runs=[run for run in reversed(forge.runs) if _visible(request, run.project)][:30],
        issues=[issue for issue in reversed(forge.issues) if _visible(request, issue.project)],
    )


@routes.get("/demo/runs/{number:\\d+}")
async def run_page(request: web.Request) -> web.Response:
    forge = request.app[ECOSYSTEM].forge
    number = int(request.match_info["number"])
    run = forge.runs[number - 1] if 0 < number <= len(forge.runs) else None
    if run is None or not _visible(request, run.project):
        return json_error(404, f"no run {number}")
    return render(
        request, "demo/run.html", title=f"{run.project}: CI #{run.number}", run=run, now=utcnow()
    )


@routes.get("/demo/commits/{sha:[0-9a-f]{40}}")
async def commit_page(request: web.Request) -> web.Response:
    forge = request.app[ECOSYSTEM].forge
    sha = request.match_info["sha"]
    commit = forge.find_commit(sha)
    if commit is None or not _visible(request, commit.project):
        return json_error(404, f"no commit {sha}")
    return render(
        request,
        "demo/commit.html",
        title=f"{commit.project} at {sha[:7]}",
        commit=commit,
        report=forge.reports.get(sha),
        config_report=forge.config_reports.get(sha),
        runs=[run for run in forge.runs if run.sha == sha],
    )


@routes.get("/demo/issues/{number:\\d+}")
async def issue_page(request: web.Request) -> web.Response:
    forge = request.app[ECOSYSTEM].forge
    number = int(request.match_info["number"])
    issue = forge.issue(number) if 0 < number <= len(forge.issues) else None
    if issue is None or not _visible(request, issue.project):
        return json_error(404, f"no issue {number}")
    return render(request, "demo/issue.html", title=f"#{number} {issue.title}", issue=issue)


@routes.get("/demo/compare/{base:[0-9a-f]{40}}...{head:[0-9a-f]{40}}")
async def compare_page(request: web.Request) -> web.Response:
    forge = request.app[ECOSYSTEM].forge
    base, head = (
        forge.find_commit(request.match_info["base"]),
        forge.find_commit(request.match_info["head"]),
    )
    if base is None or head is None or base.project != head.project:
        return json_error(404, "no such comparison")
    if not _visible(request, head.project):
        return json_error(404, "no such comparison")
    commits = forge.commits[head.project]
    start, end = commits.index(base), commits.index(head)
    return render(
        request,
        "demo/compare.html",
        title=f"{head.project}: {base.sha[:7]}…{head.sha[:7]}",
        project=head.project,
        commits=list(reversed(commits[start + 1 : end + 1])),
    )
