"""Every Markdown text the bot posts, rendered from the templates in `conjunction/templates/`.

Anything a user or a CI system wrote reaches a template's Markdown only through the filters of
`conjunction.markdown` (`md`, `code`, `block`, `sentence`, `link`, `url`, `mention`), which leave
it inert anywhere, table cells included: no link, image, emphasis, heading, HTML or @-mention that
the template did not write. A posted body is cut to fit under the forges' limits (`LIMITS`), saying
how much was left out and linking the event page. Hidden markers let the bot find its posts again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from conjunction import markdown, progress

ISSUE_LABEL = "conjunction"
ISSUE_LABEL_COLOR = "d93f0b"
ISSUE_LABEL_DESCRIPTION = "A downstream project broke against an upstream change"
PR_COMMENT_MARKER = "<!-- conjunction:downstream-summary -->"


# The most a posted text may hold, in characters: under GitHub's 65,536 for an issue's body or
# a comment, which GitLab's 1,000,000 for a note or description holds too. A check run's
# summary (under 65,535) is cut to leave room for the pull request comment that quotes it.
BODY_LIMIT = 65_000
SUMMARY_LIMIT = 60_000
TITLE_LIMIT = 250  # GitHub: 256, GitLab: 255
LIMITS = {
    "issue_body.md": BODY_LIMIT,
    "issue_fixed.md": BODY_LIMIT,
    "issue_still_failing.md": BODY_LIMIT,
    "pr_comment.md": BODY_LIMIT,
    "summary.md": SUMMARY_LIMIT,
    "config_problems.md": SUMMARY_LIMIT,
}


def md(text: object) -> str:
    """Make user-written text inert inside Markdown, table cells included (one line)."""
    return markdown.inline(text)


def short(sha: str | None) -> str:
    """A commit id's first 7 characters, only its letters and digits (it stands in code)."""
    return "".join(c for c in (sha or "") if c.isascii() and c.isalnum())[:7] or "unknown"


def breakage_marker(upstream: str, downstream: str) -> str:
    return f"<!-- conjunction:breakage {upstream.lower()} -> {downstream.lower()} -->"


_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=False,  # Markdown, not HTML: user text is escaped by the `md` filter
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["md"] = md
_templates.filters["code"] = markdown.code
_templates.filters["block"] = markdown.block
_templates.filters["sentence"] = markdown.sentence
_templates.filters["url"] = markdown.url
_templates.filters["short"] = short
_templates.filters["wait"] = progress.wait
_templates.globals["link"] = markdown.link
_templates.globals["mention"] = markdown.mention


def render(template: str, **values: Any) -> str:
    """The template filled with values, cut to its limit (`LIMITS`) with a note linking the
    event page (`trace_url`) when it has one."""
    text = _templates.get_template(template).render(**values)
    if template == "issue_title.txt":
        return markdown.cut_line(text, TITLE_LIMIT)
    limit = LIMITS.get(template)
    return text if limit is None else markdown.fit(text, limit, values.get("trace_url"))
