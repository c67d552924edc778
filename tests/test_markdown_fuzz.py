"""Every text the bot posts, rendered for hostile values and read back as a forge would.

Anyone may declare any public project as an upstream, so a stranger's CI and commits supply
URLs, titles, names, reasons and excerpts that Conjunction posts on someone else's repository.
Hypothesis fills every posted template (issue bodies and comments, check summaries, the pull
request comment, config problems, statuses' descriptions, notifications) with such values;
markdown-it-py parses the result as GitHub Flavored Markdown (GFM's autolinks included), and
each test asserts what a reader would see: no link, image, heading or HTML that the template
did not write, no `@` mention of anyone the config did not name, every table row whole, and
every body within the forge's limits.

50 examples a test by default; `CONJUNCTION_FUZZ=long` runs thousands (tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from conjunction import markdown, tally, texts
from conjunction.adapters import Adapters
from conjunction.config.repo_config import ConfigProblem
from conjunction.engine import premerge, reports
from conjunction.engine.issues import Owner, culprit_comment, culprit_marker
from conjunction.excerpts import SOURCE_WORDS, Cause, Excerpt, Source
from conjunction.models import Bisect, Event
from conjunction.names import GITHUB_OWNER, GITLAB_OWNER
from conjunction.notify.irc import clean
from conjunction.notify.message import Message, irc, slack
from conjunction.premerge import Row as PremergeRow
from conjunction.premerge import Shown, describe
from conjunction.results import FLAKY_HINT, Result, Verdict

GITHUB_BODY = 65_536  # an issue's body, a comment
GITHUB_SUMMARY = 65_535  # a check run's summary: under this
MARKER = "<!-- conjunction:breakage github.com/acme/lib -> github.com/acme/app -->"
HEADINGS = {"What changed since it last passed"}  # the only heading a template writes

# GFM as GitHub renders it: tables, strikethrough, and autolinks of www., http(s)://, ftp://
# and e-mail addresses (not of bare domains or `//host`, which linkify-it would take)
MD = MarkdownIt("gfm-like")
assert MD.linkify is not None, "linkify-it-py, which markdown-it-py's GFM preset uses"
MD.linkify.set({"fuzzy_link": False})
MD.linkify.add("//", None)
# A mention as GitHub and GitLab read one: `@` not inside a word, then a login or a path
MENTION = re.compile(r"(?<![A-Za-z0-9_`.\-/])@([A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)*)")

ATTACKS = [
    "https://ci.example/9) [Security notice](https://evil.example/login) @acme/security (x",
    "[Click](https://evil.example/phish)",
    "![](https://evil.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "<a href='https://evil.example'>x</a>",
    "<!-- hidden -->",
    "**bold** __strong__ _em_ *em* ~~gone~~ $x^2$",
    "x\r\r# INJECTED",
    "\n\n# heading\n",
    "\n---\n",
    "\nSetext\n===\n",
    "| a | b |",
    "`code` ``x``",
    "```\nfenced\n```",
    "@alice",
    "@acme/security",
    "user@example.com",
    "https://evil.example/x",
    "http://evil.example",
    "www.evil.example",
    "javascript:alert(1)",
    "[ref]: https://evil.example",
    "[ref]",
    "&lt;b&gt; &amp; &#64;",
    "\\",
    "\u202eevil\u202c",
    "- item",
    "1. item",
    "> quote",
    "#12 org/repo#3",
    "\u2028\u2029\x85\x0b\x0c",
    "[x]: <https://evil.example>",
    "<https://evil.example>",
    "\x00\x1b[31m",
]

piece = st.one_of(st.sampled_from(ATTACKS), st.text(max_size=12))
short_value = st.lists(piece, max_size=5).map("".join)
# now and then far past any limit: a long value repeated
hostile = st.one_of(
    short_value,
    st.builds(lambda text, times: (text or "x") * times, short_value, st.integers(1, 4000)),
)
hostile_or_none = st.one_of(st.none(), hostile)
# inside lists: long enough to cut a table, small enough for Hypothesis to make many
medium = st.one_of(
    short_value, st.builds(lambda text, times: (text or "x") * times, piece, st.integers(1, 60))
)
medium_or_none = st.one_of(st.none(), medium)
urls = st.one_of(
    st.none(),
    st.sampled_from(ATTACKS),
    st.builds(lambda path: f"https://ci.example/{path}", short_value),
    st.just("https://ci.example/runs/9"),
    short_value,
)
owner_names = st.one_of(
    st.from_regex(GITHUB_OWNER, fullmatch=True),
    st.from_regex(GITLAB_OWNER, fullmatch=True),
    medium,
)
owners = st.lists(
    st.builds(
        Owner,
        name=owner_names,
        mention=st.booleans(),
        forge=st.sampled_from(["github.com", "gitlab.com", "GitHub", "git.acme.dev"]),
        url=urls,
        syntax=st.sampled_from(["github", "gitlab"]),
    ),
    max_size=30,
).flatmap(lambda few: st.sampled_from([few, few * 20]))  # up to 600 owners
shas = st.one_of(st.none(), st.text(max_size=70), st.just("a" * 40))
commits = st.fixed_dictionaries(
    {"sha": st.text(min_size=1, max_size=64), "title": medium, "author": medium, "url": urls}
)
ranges = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "project": medium,
            "base": st.text(min_size=1, max_size=64),
            "head": st.text(min_size=1, max_size=64),
            "total": st.one_of(st.none(), st.integers(0, 10**6)),
            "more": st.integers(0, 10**6),
            "url": urls,
            "commits": st.lists(commits, max_size=20),
        }
    ),
)
# why a run failed: lines a stranger's CI wrote, its log's address
excerpts = st.one_of(
    st.none(),
    st.builds(
        Excerpt,
        text=hostile,
        source=st.sampled_from(list(Source)),
        cause=st.sampled_from([None, *Cause]),
        log_url=urls,
    ),
)
# the only HTML a text with an excerpt holds: the `<details>` the template wrote around it
EXCERPT_HTML = [
    f"<details><summary>{cause or 'why it failed'}: {origin}</summary>"
    for cause in [None, *Cause]
    for origin in SOURCE_WORDS.values()
] + ["</details>"]


def walk(tokens: Sequence[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from walk(token.children)


def read(body: str) -> dict[str, Any]:
    """What a reader of `body` meets: links, images, headings, HTML, mentions, table rows."""
    tokens = list(walk(MD.parse(body)))
    seen: dict[str, Any] = {
        "links": [],
        "images": 0,
        "headings": [],
        "html": [],
        "mentions": [],
        "rows": [],
    }
    in_link = 0
    in_heading = False
    for token in tokens:
        if token.type == "link_open":
            seen["links"].append(token.attrGet("href"))
            in_link += 1
        elif token.type == "link_close":
            in_link -= 1
        elif token.type == "image":
            seen["images"] += 1
        elif token.type == "heading_open":
            in_heading = True
            seen["headings"].append("")
        elif token.type == "heading_close":
            in_heading = False
        elif token.type in ("html_inline", "html_block"):
            seen["html"].append(token.content.strip())
        elif token.type == "tr_open":
            seen["rows"].append(0)
        elif token.type in ("th_open", "td_open"):
            seen["rows"][-1] += 1
        elif token.type == "text":
            if in_heading:
                seen["headings"][-1] += token.content
            if not in_link:  # GitHub mentions no one inside a link's text
                seen["mentions"] += [m.rstrip(".") for m in MENTION.findall(token.content)]
    return seen


def assert_inert(
    body: str,
    *,
    links: Sequence[object] = (),
    mentioned: Sequence[Owner] = (),
    markers: Sequence[str] = (),
    limit: int = GITHUB_BODY,
) -> dict[str, Any]:
    """`body` holds only what its template wrote live: links to the intended safe URLs, the
    config's owners' mentions, the template's heading and hidden marker; within `limit`."""
    assert len(body) <= limit
    seen = read(body)
    allowed = {MD.normalizeLink(safe) for url in links if (safe := markdown.safe_url(url))}
    assert set(seen["links"]) <= allowed, seen["links"]
    assert seen["images"] == 0
    assert set(seen["headings"]) <= HEADINGS, seen["headings"]
    assert set(seen["html"]) <= set(markers), seen["html"]
    named = {owner.name for owner in mentioned if owner.mention}
    assert set(seen["mentions"]) <= named, (seen["mentions"], named)
    return seen


def range_links(*found: dict[str, Any] | None) -> list[object]:
    links: list[object] = []
    for commit_range in filter(None, found):
        links.append(commit_range["url"])
        links += [commit["url"] for commit in commit_range["commits"]]
    return links


@given(
    upstream=hostile,
    downstream=hostile,
    sha=shas,
    hint=st.one_of(st.none(), st.just(FLAKY_HINT), hostile),
    culprit=hostile_or_none,
    run_url=urls,
    compare_url=urls,
    upstream_commits=ranges,
    downstream_commits=ranges,
    downstream_owners=owners,
    upstream_owners=owners,
    upstream_private=st.booleans(),
    excerpt=excerpts,
)
def test_an_issue_body_holds_nothing_live_but_its_own(**values: Any) -> None:
    trace = "https://conjunction.test/events/1"
    body = texts.render("issue_body.md", marker=MARKER, trace_url=trace, **values)
    assert body.startswith(MARKER + "\n")  # found again by its marker, however it was cut
    assert_inert(
        body,
        links=[
            trace,
            values["run_url"],
            values["compare_url"],
            values["excerpt"] and values["excerpt"].log_url,
            *range_links(values["upstream_commits"], values["downstream_commits"]),
            *[owner.url for owner in values["downstream_owners"] + values["upstream_owners"]],
        ],
        mentioned=values["downstream_owners"] + values["upstream_owners"],
        markers=[MARKER],
    )
    title = texts.render(
        "issue_title.txt",
        upstream=values["upstream"],
        downstream=values["downstream"],
        upstream_private=values["upstream_private"],
    )
    assert len(title) <= 256 and not any(c in title for c in "\r\n\x00")


@given(
    downstream=hostile,
    sha=shas,
    run_url=urls,
    hint=hostile_or_none,
    upstream_private=st.booleans(),
    excerpt=excerpts,
)
def test_an_issues_comments_hold_nothing_live_but_their_own(**values: Any) -> None:
    trace = "https://conjunction.test/events/2"
    excerpt = values.pop("excerpt")
    fixed = texts.render("issue_fixed.md", **values)
    assert_inert(fixed, links=[values["run_url"]])
    still = texts.render(
        "issue_still_failing.md",
        sha=values["sha"],
        upstream_private=values["upstream_private"],
        run_url=values["run_url"],
        trace_url=trace,
        excerpt=excerpt,
    )
    assert_inert(still, links=[values["run_url"], trace, excerpt and excerpt.log_url])


def event(values: dict[str, Any], number: int) -> Event:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return Event(
        id=f"event{number}",
        kind="trigger",
        project=values["name"],
        result=values["result"],
        change=values["verdict"],
        url=values["url"],
        reason=values["reason"],
        hint=values["hint"],
        changes=values["changes"],
        confirming="again" if values["confirming"] else None,
        last_passed_sha=values["sha"],
        fallout=values["via"] or "x" if values["fallout"] else None,
        started_at=now if values["started"] else None,
        finished_at=now + timedelta(seconds=values["seconds"]) if values["result"] else None,
        excerpt=values["excerpt"].stored() if values["excerpt"] else None,
    )


rows = st.lists(
    st.fixed_dictionaries(
        {
            "name": medium,
            "via": medium_or_none,
            "owners": st.lists(owner_names, max_size=12),
            "required": st.booleans(),
            "compare_url": urls,
            "result": st.sampled_from([None, *[str(result) for result in Result]]),
            "verdict": st.sampled_from([None, *[str(verdict) for verdict in Verdict]]),
            "hint": st.sampled_from([None, FLAKY_HINT]),
            "url": urls,
            "reason": medium_or_none,
            "sha": shas,
            "confirming": st.booleans(),
            "started": st.booleans(),
            "seconds": st.integers(0, 10**5),
            "private": st.booleans(),
            "fallout": st.booleans(),
            "excerpt": excerpts,
            "changes": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"upstream": ranges, "downstream": ranges, "culprit": medium_or_none}
                ),
            ),
        }
    ),
    min_size=1,
    max_size=6,
).flatmap(lambda few: st.sampled_from([few, few * 60]))  # up to 480 rows


def as_rows(found: list[dict[str, Any]]) -> list[tally.Row]:
    made = []
    for number, values in enumerate(found):
        row_event = event(values, number)
        made.append(
            tally.Row(
                event=row_event,
                name="" if values["private"] else values["name"],
                owners=values["owners"],
                required=values["required"],
                compare_url=values["compare_url"],
                via=values["via"],
            )
        )
    return made


@given(found=rows)
def test_a_check_summary_and_the_pull_request_comment_hold_nothing_live_but_their_own(
    found: list[dict[str, Any]],
) -> None:
    made = as_rows(found)
    report = reports.aggregate(made, "https://conjunction.test/events/3")
    links = [
        link
        for values in found
        for link in [
            values["url"],
            values["compare_url"],
            values["excerpt"] and values["excerpt"].log_url,
            *range_links(
                (values["changes"] or {}).get("upstream"),
                (values["changes"] or {}).get("downstream"),
            ),
        ]
        if not isinstance(link, dict)
    ]
    seen = assert_inert(report.summary, links=links, markers=EXCERPT_HTML, limit=GITHUB_SUMMARY - 1)
    assert all(cells == 6 for cells in seen["rows"]), "every row of the table is whole"
    comment = texts.render(
        "pr_comment.md",
        marker=texts.PR_COMMENT_MARKER,
        description=report.description,
        summary=report.summary,
    )
    assert_inert(comment, links=links, markers=[texts.PR_COMMENT_MARKER, *EXCERPT_HTML])
    # a commit status's description is words and counts only, under the forges' 140
    assert len(report.description) <= 140 or report.description.count(",") > 5
    assert not re.search(r"[@<>\[\]`]|https?:", report.description)


@given(
    problems=st.lists(
        st.builds(
            ConfigProblem,
            line=st.one_of(st.none(), st.integers(1, 10**6)),
            field=hostile,
            message=hostile,
        ),
        max_size=200,
    )
)
def test_config_problems_hold_nothing_live(problems: list[ConfigProblem]) -> None:
    assert_inert(texts.render("config_problems.md", problems=problems), limit=GITHUB_SUMMARY - 1)


@given(
    state=st.sampled_from(["new_regression", "fixed", "flaky", "already_broken"]),
    names=st.tuples(hostile, hostile),
    shas=st.tuples(shas, shas),
    culprit=hostile_or_none,
    hint=st.one_of(st.none(), st.just(FLAKY_HINT), hostile),
)
def test_notifications_hold_no_markup_of_their_values(
    state: str,
    names: tuple[str, str],
    shas: tuple[str | None, str | None],
    culprit: str | None,
    hint: str | None,
) -> None:
    message = Message(
        state=state,
        verdict="new regression",
        upstream=names[0],
        upstream_sha=shas[0],
        downstream=names[1],
        downstream_sha=shas[1],
        event_id="e1",
        event_url="https://conjunction.test/events/e1",
        run_url="https://ci.example/runs/1",
        culprit=culprit,
        hint=hint,
    )
    texts_in_blocks: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn":
                texts_in_blocks.append(value["text"])
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(slack(message))
    # Slack's links, mentions and channel pings are all `<…>`: none can come from a value
    for text in texts_in_blocks:
        assert "<" not in text and ">" not in text
    line = clean(irc(message))
    assert not any(c in line for c in "\r\n\x00")


@given(
    downstream=hostile,
    commits_found=st.lists(commits, min_size=1, max_size=12),
    login=st.one_of(st.none(), owner_names),
    requested_by=hostile_or_none,
    upstream_private=st.booleans(),
    found=st.booleans(),
)
def test_a_culprit_search_answer_holds_nothing_live_but_its_own(**values: Any) -> None:
    found = values["commits_found"]
    commits_json = [{**c, "login": values["login"]} for c in found]
    answer = {
        "ending": "found" if values["found"] else "max runs",
        "culprit": commits_json[-1]["sha"] if values["found"] else None,
        "suspects": [c["sha"] for c in commits_json],
        "runs": len(found),
        "skipped": [],
        "flaky": [commits_json[0]["sha"]],
    }
    search = Bisect(
        id=1,
        upstream="github.com/acme/lib",
        downstream=values["downstream"],
        failure_id="f" * 32,
        base_sha="a" * 40,
        head_sha="b" * 40,
        commits=commits_json,
        steps=[
            {"sha": c["sha"], "again": False, "result": "failure", "url": c["url"]} for c in found
        ],
        requested_by=values["requested_by"],
        answer=answer,
    )

    class Trace:
        adapters = Adapters()

        def event_url(self, event_id: str) -> str:
            return f"https://conjunction.test/events/{event_id}"

    body = culprit_comment(
        Trace(),  # type: ignore[arg-type]
        "github.com/acme/app",
        search,
        values["upstream_private"],
    )
    assert body.startswith(culprit_marker(1) + "\n")
    login = values["login"]
    assert_inert(
        body,
        links=[c["url"] for c in found] + ["https://conjunction.test/events/" + "f" * 32],
        mentioned=[Owner(login, True, "github.com")] if login else [],
        markers=[culprit_marker(1)],
    )


premerge_rows = st.lists(
    st.builds(
        Shown,
        name=st.one_of(st.just(""), medium),
        row=st.sampled_from(list(PremergeRow)),
        required=st.booleans(),
        detail=st.one_of(st.just(""), medium),
        url=urls,
        base_url=urls,
        excerpt=excerpts,
    ),
    min_size=1,
    max_size=6,
).flatmap(lambda few: st.sampled_from([few, few * 60]))


@given(shown=premerge_rows, base=shas, head=shas)
def test_a_pre_merge_summary_and_comment_hold_nothing_live_but_their_own(
    shown: list[Shown], base: str | None, head: str | None
) -> None:
    page = "https://conjunction.test/changes/github.com/acme/lib/7"
    summary = premerge.summary_of(shown, base=base, head=head, page=page)
    links = [
        page,
        *[url for row in shown for url in (row.url, row.base_url)],
        *[row.excerpt.log_url for row in shown if row.excerpt],
    ]
    seen = assert_inert(summary, links=links, markers=EXCERPT_HTML, limit=GITHUB_SUMMARY - 1)
    assert all(cells == 4 for cells in seen["rows"]), "every row of the table is whole"
    comment = texts.render(
        "premerge_comment.md",
        marker=premerge.MARKER,
        description=describe(shown),
        summary=summary,
    )
    assert_inert(comment, links=links, markers=[premerge.MARKER, *EXCERPT_HTML])


@given(
    kind=st.sampled_from(
        [
            "not_allowed",
            "unknown",
            "misplaced",
            "too_many",
            "bisect",
            "no_change",
            "premerge_not_started",
            "retry_started",
            "retry_running",
            "retry_nothing",
        ]
    ),
    word=hostile,
    reason=hostile,
    downstream=hostile,
)
def test_answers_to_commands_hold_nothing_live_of_the_comment(
    kind: str, word: str, reason: str, downstream: str
) -> None:
    """What a comment said (its word) and what comes from elsewhere (a reason, a project's
    name) is inert in the answer; its only link is the trace of a retry."""
    trace = "https://conjunction.test/events/3"
    answer = texts.render(
        "command_reply.md",
        kind=kind,
        forge="github",
        word=word[:40],
        verb="bisect",
        belongs="on a breakage issue Conjunction opened",
        limit=5,
        change_word="pull or merge request",
        reason=reason,
        answer=reason,
        downstream=downstream,
        trace_url=trace,
    )
    assert_inert(answer, links=[trace])
    assert_inert(texts.render("command_help.md"))


def test_every_posted_template_is_among_those_filled_here() -> None:
    """A new template is added to these tests, or this fails: each is filled above, as a macro
    of one (commit lists, owners, excerpts) or with no value at all (a valid config's
    summary)."""
    filled = {
        "issue_body.md",
        "issue_title.txt",
        "issue_fixed.md",
        "issue_still_failing.md",
        "summary.md",
        "pr_comment.md",
        "config_problems.md",
        "commit_list.md",
        "owners.md",
        "config_valid.md",
        "culprit.md",
        "premerge.md",
        "premerge_comment.md",
        "command_reply.md",
        "command_help.md",
        "excerpt.md",
    }
    templates = Path(texts.__file__).with_name("templates")
    assert {path.name for path in templates.iterdir() if path.suffix in (".md", ".txt")} == filled
