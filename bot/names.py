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
    """The host and owner of a project name (`github.com/acme`): one installation's or one
    group's share of a forge's limits."""
    host, owner, *_ = name.split("/", 2)
    return f"{host}/{owner}".lower()
