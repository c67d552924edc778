"""The one rule for every text the bot posts: what a user or a CI system wrote is shown as text.

Anyone may declare any public project as an upstream, so a stranger's CI and commits supply
URLs, titles, names, reasons and excerpts that end up in issues, comments and check runs on
someone else's repository. Each such value reaches Markdown only through this module:

- `inline(value)`: one line of text, inert anywhere — in a paragraph, a list item or a table
  cell. Every Markdown punctuation character is backslash-escaped (no link, image, emphasis,
  heading, table break, HTML or entity), line breaks of any kind become spaces, control and
  bidirectional-override characters go, `@` is followed by a zero-width space (no mention, no
  e-mail autolink), and bare `https://…`, `www.`, `#12` and `GH-12` are broken up so no forge
  linkifies them. (A bare commit sha is left as it is: it can only link to a commit.)
  Long values are cut with "…".
- `text(value)`: the same for several lines (an excerpt), each its own line.
- `code(value)`: a code span that no content can close.
- `block(value)`: several lines (a failure's excerpt) as a fenced code block that no content
  can close: nothing in it is a link, a mention or markup.
- `link(label, url)`: a link only when `url` is an http(s) URL with nothing in it that could
  close a Markdown construct; otherwise the label and the URL as escaped text. `url(value)`:
  the URL as its own link text, on the same terms.
- `sentence(value)`: text the bot wrote itself with `code` spans in it (a culprit's sentence),
  escaped outside its code spans.
- `fit(text, limit)`: a whole body cut at a line under a forge's limit, saying how much was
  left out and where to see it all.

Only the templates' own Markdown (in `conjunction/templates/`) is live.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from conjunction.names import GITHUB_OWNER, GITLAB_OWNER

INLINE_LIMIT = 500  # characters of one value shown inline; longer ones end in "…"
TEXT_LIMIT = 2048  # characters of a multi-line value
URL_LIMIT = 2000
ZWSP = "\u200b"  # breaks a mention or an autolink without showing

# CommonMark lets any ASCII punctuation be escaped; these can mean something wherever they
# stand (GitHub adds `$` for math and `~` for strikethrough). `-`, `+`, `=` and `.` mean
# something only where a line starts (a list, a heading's underline, `1.`): escaped there.
# `(`, `)` and `!` mean something only after `]`, which is always escaped.
_ESCAPED = frozenset("\\`*_[]#|<>~&$")
_LINE_START = re.compile(r"^(?:[-+=]|\d{1,9}(?=[.)]))")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# `https://`, `www.` and GitHub's `GH-12` (an issue of the repository posted to)
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(:)(?=//)|\b(www)(?=\.)|\b(gh)(?=-\d)")
# where a URL may not have these: they could end a link's destination, a table cell or an
# autolink, or open another construct
_URL_FORBIDDEN = frozenset("()[]<>\"'`\\|{}^ ")


def _visible(value: object) -> str:
    """The text with line breaks as spaces, and no control or bidi-override characters."""
    text = _LINE_BREAKS.sub(" ", str(value)).replace("\t", " ")
    return "".join(
        c for c in text if c not in _BIDI and unicodedata.category(c) not in ("Cc", "Cs")
    )


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def _escape(text: str) -> str:
    text = _AUTOLINK.sub(lambda m: (m[1] or m[2] or m[3]) + ZWSP, text)
    out = []
    start = _LINE_START.match(text)
    if start is not None:  # `- x`, `+ x`, `=`, `1. x` or `1) x` would start a block
        end = start.end()
        if text[:end].isdigit():
            out.append(text[:end] + "\\" + text[end])
            end += 1
        else:
            out.append("\\" + text[:end])
        text = text[end:]
    for index, c in enumerate(text):
        if c == "_" and _intraword(text, index):
            out.append(c)  # `snake_case`: an underscore inside a word emphasises nothing
        elif c == "#" and text[index + 1 : index + 2].isdigit():
            out.append("\\#" + ZWSP)  # `#12` would name an issue of the repository posted to
        elif c in _ESCAPED:
            out.append("\\" + c)
        elif c == "@":
            out.append("\\@" + ZWSP)
        else:
            out.append(c)
    return "".join(out)


def _intraword(text: str, index: int) -> bool:
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    return before.isascii() and before.isalnum() and after.isascii() and after.isalnum()


def inline(value: object, limit: int | None = INLINE_LIMIT) -> str:
    """`value` as one line of inert text, cut to `limit` characters."""
    if value is None:
        return ""
    return _escape(_cut(_visible(value).strip(), limit))


def _words(value: str) -> str:
    """Inert text, its spaces kept: a part of a line that goes on."""
    return _escape(_visible(value))


def text(value: object, limit: int | None = TEXT_LIMIT) -> str:
    """`value` as inert lines of text (blank lines and indentation dropped), cut to `limit`."""
    if value is None:
        return ""
    lines = (line.strip() for line in _LINE_BREAKS.split(_cut(str(value), limit)))
    return "  \n".join(inline(line, None) for line in lines if _visible(line).strip())


def code(value: object, *, table: bool = False, limit: int | None = INLINE_LIMIT) -> str:
    """`value` as a code span: fenced by more backticks than it holds in a row. In a table
    cell (`table`), `|` is escaped, as GitHub reads cells before code spans."""
    content = _cut(_visible(value).strip(), limit) or " "
    if table:
        content = content.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * (longest + 1)
    if content.startswith("`") or content.endswith("`"):
        content = f" {content} "
    return f"{fence}{content}{fence}"


def block(value: object, limit: int | None = TEXT_LIMIT) -> str:
    """`value` as a fenced code block, its fence longer than any run of backticks inside, its
    lines without control or bidi-override characters."""
    lines = _LINE_BREAKS.split(_cut(str(value or ""), limit))
    content = "\n".join(_visible(line).rstrip() for line in lines).strip("\n")
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{content}\n{fence}"


def safe_url(value: object) -> str | None:
    """`value` when it is an http(s) URL that can stand in a link as it is, else None."""
    if not isinstance(value, str) or not value or len(value) > URL_LIMIT:
        return None
    if any(c in _URL_FORBIDDEN or not c.isprintable() or c.isspace() for c in value):
        return None
    if not value.isascii():
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if not value.lower().startswith(f"{parts.scheme.lower()}://"):
        return None
    return value


def link(label: object, url: object, *, as_code: bool = False) -> str:
    """`[label](url)` for a safe http(s) URL; else the label and the URL as text (or the label
    alone when there is no URL). `as_code`: the label is shown as code."""
    shown = code(label) if as_code else inline(label)
    safe = safe_url(url)
    if safe is not None:
        return f"[{shown}]({safe})"
    if url is None or url == "":
        return shown
    return f"{shown} ({inline(url, 200)})"


def url(value: object) -> str:
    """A safe http(s) URL as its own link (`<…>`); anything else as text."""
    safe = safe_url(value)
    return f"<{safe}>" if safe is not None else inline(value, 200)


def sentence(value: object, limit: int | None = TEXT_LIMIT) -> str:
    """Text the bot composed with `code` spans in it: each span kept as code, the rest inert."""
    if value is None:
        return ""
    parts = re.split(r"`([^`]*)`", _cut(_visible(value), limit))
    return "".join(
        code(part, limit=None) if index % 2 else _words(part) for index, part in enumerate(parts)
    )


def mention(name: str, syntax: str) -> str:
    """`@name`, notifying them, when the name is one the forge's mention reads whole: a GitHub
    login or team (on github.com and GitHub Enterprise alike); on a forge that spells names as
    GitLab does (GitLab, Gitea, Forgejo), a user or group path too. Any other name is shown as
    text. `syntax`: "github", or the forge's own spelling ("gitlab")."""
    if GITHUB_OWNER.fullmatch(name) or (syntax != "github" and GITLAB_OWNER.fullmatch(name)):
        return f"@{name}"
    return inline(name)


def cut_note(omitted: int, more_url: str | None = None) -> str:
    """What ends a body cut short: how many lines were left out, and where all of them are."""
    lines = "line" if omitted == 1 else "lines"
    where = link("the whole text on Conjunction", more_url) if safe_url(more_url) else None
    return f"… and {omitted} more {lines}" + (f": {where}" if where else "")


def fit(body: str, limit: int, more_url: str | None = None) -> str:
    """`body` when it has at most `limit` characters; else its first lines that fit with the
    note of `cut_note` — cut between lines, so no construct is left open but the omitted part
    of a table or list."""
    if len(body) <= limit:
        return body
    lines = body.split("\n")
    reserve = len(cut_note(len(lines), more_url)) + 2
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit - reserve:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # one line longer than the limit: cut inside it, on a character boundary
        kept = [inline(lines[0], max((limit - reserve) // 3, 1))]
    omitted = len(lines) - len(kept)
    return "\n".join(kept).rstrip("\n") + "\n\n" + cut_note(max(omitted, 1), more_url) + "\n"


def cut_line(value: str, limit: int) -> str:
    """A plain one-line text (an issue's title): line breaks as spaces, at most `limit`."""
    return _cut(_visible(value).strip(), limit)
