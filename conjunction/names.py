"""Project names (`github.com/acme/lib`, `gitlab.com/group/sub/app`): what is accepted, and why
not; how they compare (case-insensitively) and split.

A name is a lower-case host and a path of at least two segments. Names come from people and CI
systems (the `token` command, `POST /api/v1/builds`) and end up in URLs, pages and command
lines, so anything that could climb out of a path or read as an option is refused.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAX_LENGTH = 300
EXAMPLE = "github.com/acme/lib"

_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_SEGMENT = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")


def project_name(text: str) -> str:
    """`text` as a project name with its host in lower case; ValueError saying what is wrong."""
    if len(text) > MAX_LENGTH:
        raise ValueError(f"not a project name: longer than {MAX_LENGTH} characters")
    host, _, path = text.partition("/")
    host = host.lower()
    segments = path.split("/") if path else []
    if not _HOST.fullmatch(host):
        raise ValueError("not a project name: the host must be a domain like github.com")
    if ".." in text:
        raise ValueError("not a project name: '..' is not allowed")
    if "" in segments:
        raise ValueError("not a project name: it has an empty path segment")
    if len(segments) < 2:
        raise ValueError(
            f"not a project name: it needs a host and two path segments, like {EXAMPLE}"
        )
    for segment in segments:
        if segment == "." or not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"not a project name: {segment[:40]!r} is not a path segment "
                "(letters, digits, '.', '_' and '-', not starting with '-')"
            )
    return f"{host}/{path}"


def _checked(text: str) -> str:
    try:
        return project_name(text)
    except ValueError as exc:
        # a custom error keeps pydantic's "Value error, " prefix out of the answer
        raise PydanticCustomError("project_name", str(exc)) from None


ProjectName = Annotated[str, AfterValidator(_checked)]
"""A project name in a pydantic model, normalised by `project_name`."""


def project_key(name: str) -> str:
    """Project names compare case-insensitively (`github.com/Acme/Lib` is `github.com/acme/lib`)."""
    return name.strip().strip("/").lower()


def split_project(name: str) -> tuple[str, str]:
    """`github.com/acme/lib` -> (`github.com`, `acme/lib`)."""
    host, _, path = name.partition("/")
    return host.lower(), path


def host_of(name: str) -> str:
    return split_project(name)[0]


def owner_of(name: str) -> str:
    """The host and owner — account, organization or top-level group — of a project, compared
    case-insensitively: `github.com/acme/lib` -> `github.com/acme`."""
    host, path = split_project(project_key(name))
    return f"{host}/{path.split('/', 1)[0]}"


# Owners, as each forge spells them. GitHub: a login (at most 39 letters, digits and single
# hyphens between them) or a team `org/team-slug`. GitLab: a user or a group path
# (`group/sub`), each segment letters, digits, `_`, `.` and `-`, starting and ending with a
# letter, digit or `_`, at most 255 characters in all.
GITHUB_LOGIN = r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}"
GITHUB_OWNER = re.compile(rf"{GITHUB_LOGIN}(?:/[A-Za-z0-9_][A-Za-z0-9_-]{{0,99}})?")
_GITLAB_SEGMENT = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9_])?"
GITLAB_OWNER = re.compile(rf"(?=.{{1,255}}\Z){_GITLAB_SEGMENT}(?:/{_GITLAB_SEGMENT}){{0,19}}")
OWNER_SYNTAX = {"github": GITHUB_OWNER, "gitlab": GITLAB_OWNER}
OWNER_MAX_LENGTH = 255


def owner_problem(name: str, forge: str | None = None) -> str | None:
    """Why `name` is not an owner on `forge` (`github`, `gitlab`; None: on either), or None."""
    syntaxes = [OWNER_SYNTAX[forge]] if forge in OWNER_SYNTAX else list(OWNER_SYNTAX.values())
    if any(syntax.fullmatch(name) for syntax in syntaxes):
        return None
    shown = repr(name[:40]) + ("…" if len(name) > 40 else "")
    if forge == "github":
        return f"{shown} is not a GitHub login or team (like alice or acme/lib-team)"
    if forge == "gitlab":
        return f"{shown} is not a GitLab user or group path (like alice or group/sub)"
    return (
        f"{shown} is not a GitHub login or team nor a GitLab user or group "
        "(like alice or acme/lib-team)"
    )
