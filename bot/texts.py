"""Every Markdown text the bot posts, rendered from the templates in `bot/templates/`.

Anything a user wrote goes through the `md` filter, which makes it inert inside Markdown (and a
table cell): no markup, no HTML, no @-mentions. Hidden markers let the bot find its posts again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from bot import progress

ISSUE_LABEL = "conjunction"
ISSUE_LABEL_COLOR = "d93f0b"
ISSUE_LABEL_DESCRIPTION = "A downstream project broke against an upstream change"
PR_COMMENT_MARKER = "<!-- conjunction:downstream-summary -->"


def md(text: object) -> str:
    """Make user-written text inert inside Markdown, table cells included."""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("`", "'")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
        .replace("@", "@\u200b")
    )


def short(sha: str | None) -> str:
    return (sha or "unknown")[:7]


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
_templates.filters["short"] = short
_templates.filters["wait"] = progress.wait


def render(template: str, **values: Any) -> str:
    return _templates.get_template(template).render(**values)
