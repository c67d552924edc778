"""Breakage issues: one per (upstream, downstream) pair and repository while it is broken."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select

from conjunction import markdown, texts
from conjunction.adapters import Adapters
from conjunction.codehost import CodeHost, IssueRef
from conjunction.engine.bisects import step_words
from conjunction.engine.context import Context, config_of
from conjunction.engine.reports import compare_url
from conjunction.excerpts import Excerpt
from conjunction.forges import DRIVERS
from conjunction.models import Bisect, Event, IssueLink, Project
from conjunction.names import host_of, project_key
from conjunction.results import Result, Verdict

log = logging.getLogger(__name__)

# the public forges by their host; any other: its host name
FORGE_NAMES = {d.public_host: d.display_name for d in DRIVERS if d.public_host is not None}


class Action(Enum):
    OPEN = "open"
    COMMENT = "comment"
    CLOSE = "close"


def issue_action(result: Result, verdict: str | None, is_open: bool) -> Action | None:
    """What a result does to the pair's issue: a new regression opens it, later failures
    (not flakes) comment on it, the first pass closes it."""
    if result.broken:
        if is_open:
            return Action.COMMENT if verdict != Verdict.FLAKY else None
        return Action.OPEN if verdict == Verdict.NEW_REGRESSION else None
    if result.passed and is_open:
        return Action.CLOSE
    return None


def issue_repositories(downstream: Project, upstream: Project | None) -> list[str]:
    """Where the pair's issue lives: the downstream (unless it opted out), and the upstream when
    it opted in and the downstream is one it requires — never naming a private downstream in a
    public upstream."""
    targets = [downstream.name] if config_of(downstream).issues else []
    if upstream is None:
        return targets
    report = config_of(upstream).report
    if (
        report.issues
        and report.is_required(downstream.name, upstream.name)
        and not (downstream.private and not upstream.private)
    ):
        targets.append(upstream.name)
    return targets


@dataclass(frozen=True)
class Owner:
    """An owner of a project as an issue in some repository names them."""

    name: str
    mention: bool  # the issue is on the owner's own forge: `@name` notifies them
    forge: str  # where the owner is
    url: str | None = None  # their page there, when the host has one
    syntax: str = "github"  # how that forge spells names (`markdown.mention`)


def owner_syntax(adapters: Adapters, repository: str) -> str:
    """How the forge of `repository` spells its users and groups: by its code host, not its
    host name (a GitHub Enterprise host reads names as github.com does). Where no code host
    says, GitHub's, the strictest: fewer names are mentioned, never someone else."""
    return getattr(adapters.host(repository), "owner_syntax", None) or "github"


def owners_seen_from(
    adapters: Adapters, repository: str, project: str, names: Sequence[str]
) -> list[Owner]:
    """A project's owners as named in an issue of repository: mentioned on the same host;
    on another forge (another GitLab instance too), `@name` would notify whoever has that
    name there, so they are linked to their page on their own forge instead."""
    host = host_of(project)
    if host == host_of(repository):
        syntax = owner_syntax(adapters, repository)
        return [Owner(name, True, host, syntax=syntax) for name in names]
    code_host = adapters.host(project)
    forge = FORGE_NAMES.get(host, host)
    return [
        Owner(name, False, forge, code_host.profile_url(name) if code_host else None)
        for name in names
    ]


def shown_in(repository: str, project: str, private: bool) -> bool:
    """A project's commits are listed in an issue when it is public or the issue is its own."""
    return not private or project_key(repository) == project_key(project)


def upstream_hidden(repository: str, downstream: Project, upstream: Project | None) -> bool:
    """A private (or internal) upstream is never named in a public downstream's issue: not in
    its title, body, marker, compare link or commit ids."""
    return (
        upstream is not None
        and upstream.private
        and not downstream.private
        and project_key(repository) != upstream.key
    )


def hidden_marker(ctx: Context, upstream: str, downstream: str) -> str:
    """The pair's marker with the upstream as a keyed hash of its name: stable, so the issue is
    found again, and no one without the server's secret key can test a guessed name against it."""
    key = ctx.signer.key_for("issue-marker")
    digest = hmac.new(key, project_key(upstream).encode(), hashlib.sha256).hexdigest()[:20]
    return texts.breakage_marker(f"private-{digest}", downstream)


async def update_issues(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: open, comment on or close the breakage issue of one result, in each repository."""
    async with ctx.sessions() as session:
        event = await session.get(Event, payload["event_id"])
        if event is None or event.parent_id is None or event.result is None:
            return
        parent = await session.get(Event, event.parent_id)
        downstream = await session.get(Project, project_key(event.project))
        if parent is None or downstream is None:
            return
        upstream = await session.get(Project, project_key(parent.project))
        compare = await compare_url(ctx, session, parent, event)
    failures: list[Exception] = []
    for repository in issue_repositories(downstream, upstream):
        host = ctx.adapters.host(repository)
        if host is None:
            continue
        try:
            await _update_issue(ctx, host, repository, event, parent, downstream, upstream, compare)
        except Exception as exc:  # one repository's refusal never stops the others
            log.warning(
                "issue in %s not updated: %s", repository, exc, extra={"event_id": event.id}
            )
            failures.append(exc)
    if failures:
        raise failures[0]  # the job ends or runs again with it; the repositories done are skipped


async def _update_issue(
    ctx: Context,
    host: CodeHost,
    repository: str,
    event: Event,
    parent: Event,
    downstream: Project,
    upstream: Project | None,
    compare: str | None,
) -> None:
    key = (project_key(parent.project), downstream.key, project_key(repository))
    async with ctx.sessions() as session:
        link = await session.get(IssueLink, key)
    if event.result is None or (
        link is not None and (link.last_event_id, link.last_attempt) == (event.id, event.attempt)
    ):
        return  # no result, or already acted on (the job ran before)
    is_open = link is not None and link.state == "open"
    action = issue_action(Result(event.result), event.change, is_open)
    if action is None:
        return
    trace = ctx.event_url(event.id)
    hidden = upstream_hidden(repository, downstream, upstream)
    if action is Action.OPEN:
        issue = await _find_or_open(
            ctx, host, repository, event, parent, downstream, upstream, compare, trace
        )
        number, url = issue.number, issue.url
    else:
        assert link is not None  # COMMENT and CLOSE act on the open issue
        number, url = link.number, link.url
        if action is Action.COMMENT:
            body = texts.render(
                "issue_still_failing.md",
                sha=parent.sha,
                excerpt=Excerpt.of(event.excerpt),
                upstream_private=hidden,
                run_url=event.url,
                trace_url=trace,
            )
            await host.comment_issue(repository, number, body)
        else:
            body = texts.render(
                "issue_fixed.md",
                downstream=downstream.name,
                sha=parent.sha,
                upstream_private=hidden,
                run_url=event.url,
                hint=event.hint,
            )
            await host.close_issue(repository, number, body)
    async with ctx.sessions.begin() as session:
        await session.merge(
            IssueLink(
                upstream=key[0],
                downstream=key[1],
                repository=key[2],
                number=number,
                url=url,
                state="closed" if action is Action.CLOSE else "open",
                last_event_id=event.id,
                last_attempt=event.attempt,
            )
        )


async def _find_or_open(
    ctx: Context,
    host: CodeHost,
    repository: str,
    event: Event,
    parent: Event,
    downstream: Project,
    upstream: Project | None,
    compare: str | None,
    trace_url: str,
) -> IssueRef:
    """The pair's open issue, found by its hidden marker (opened before a crash), or a new one.
    A private upstream named nowhere in a public downstream's issue is "a private project"."""
    hidden = upstream_hidden(repository, downstream, upstream)
    if hidden:
        marker = hidden_marker(ctx, parent.project, downstream.name)
    else:
        marker = texts.breakage_marker(parent.project, downstream.name)
    found = await host.find_issue(repository, marker)
    if found is not None:
        return found
    changes = event.changes or {}
    body = texts.render(
        "issue_body.md",
        marker=marker,
        upstream=parent.project,
        upstream_private=hidden,
        downstream=downstream.name,
        sha=parent.sha,
        run_url=event.url,
        compare_url=None if hidden else compare,
        trace_url=trace_url,
        hint=event.hint,
        excerpt=Excerpt.of(event.excerpt),
        # the likely culprit names upstream commits
        culprit=None if hidden else changes.get("culprit"),
        upstream_commits=changes.get("upstream")
        if shown_in(repository, parent.project, bool(upstream and upstream.private))
        else None,
        downstream_commits=changes.get("downstream")
        if shown_in(repository, downstream.name, downstream.private)
        else None,
        downstream_owners=owners_seen_from(
            ctx.adapters, repository, downstream.name, downstream.owners
        ),
        upstream_owners=owners_seen_from(
            ctx.adapters, repository, parent.project, upstream.owners if upstream else []
        ),
    )
    title = texts.render(
        "issue_title.txt",
        upstream=parent.project,
        upstream_private=hidden,
        downstream=downstream.name,
    )
    return await host.open_issue(repository, title, body, [texts.ISSUE_LABEL])


def culprit_marker(bisect_id: int) -> str:
    return f"<!-- conjunction:culprit {bisect_id} -->"


def author_seen_from(
    adapters: Adapters, repository: str, upstream: str, commit: dict[str, Any]
) -> str:
    """A commit's author as an issue names them: `@login` where the host knows their account
    and the issue is on the same forge, else their name as text."""
    if commit.get("login") and host_of(repository) == host_of(upstream):
        return markdown.mention(str(commit["login"]), owner_syntax(adapters, repository))
    return texts.md(commit.get("author") or "unknown")


def culprit_comment(ctx: Context, repository: str, bisect: Bisect, hidden: bool) -> str:
    """The answer of a culprit search as the issue in `repository` shows it."""
    answer = bisect.answer or {}
    commits = {commit["sha"]: commit for commit in bisect.commits}
    culprit = commits.get(answer.get("culprit") or "")
    return texts.render(
        "culprit.md",
        marker=culprit_marker(bisect.id),
        upstream_private=hidden,
        downstream=bisect.downstream,
        culprit=culprit
        and {**culprit, "by": author_seen_from(ctx.adapters, repository, bisect.upstream, culprit)},
        ending=answer.get("ending"),
        suspects=[commits[sha] for sha in answer.get("suspects") or [] if sha in commits],
        skipped=answer.get("skipped") or [],
        flaky=[commits[sha] for sha in answer.get("flaky") or [] if sha in commits],
        total=len(bisect.commits),
        base=bisect.base_sha,
        head=bisect.head_sha,
        runs=answer.get("runs", 0),
        steps=[
            {
                "commit": commits.get(step["sha"], {"sha": step["sha"], "title": ""}),
                "again": step.get("again"),
                "words": step_words(step.get("result")),
                "url": step.get("url"),
            }
            for step in bisect.steps
        ],
        requested_by=bisect.requested_by,
        trace_url=ctx.event_url(bisect.failure_id),
    )


async def post_culprit(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: a culprit search's answer, commented on the pair's breakage issue in each repository
    it is in (once each: a repository told is recorded). A private upstream's commits are named
    only in its own repository."""
    async with ctx.sessions() as session:
        bisect = await session.get(Bisect, payload["bisect_id"])
        if bisect is None or bisect.answer is None:
            return
        downstream = await session.get(Project, project_key(bisect.downstream))
        upstream = await session.get(Project, project_key(bisect.upstream))
        links = list(
            await session.scalars(
                select(IssueLink).where(
                    IssueLink.upstream == project_key(bisect.upstream),
                    IssueLink.downstream == project_key(bisect.downstream),
                )
            )
        )
    if downstream is None:
        return
    told = set(bisect.answer.get("told") or [])
    for link in links:
        host = ctx.adapters.host(link.repository)
        if host is None or link.repository in told or not link.number:
            continue
        hidden = upstream_hidden(link.repository, downstream, upstream)
        body = culprit_comment(ctx, link.repository, bisect, hidden)
        await host.comment_issue(link.repository, link.number, body)
        told.add(link.repository)
        async with ctx.sessions.begin() as session:
            stored = await session.get(Bisect, bisect.id)
            if stored is not None and stored.answer is not None:
                stored.answer = {**stored.answer, "told": sorted(told)}
