"""Placeholders in webhook body templates and headers: `${event}`, `${secret:NAME}`, ….

A template is any YAML value; placeholders are replaced inside its strings (keys stay as they
are), always by text: `${depth}` gives "2" and `${artifacts}` the artifacts list as JSON text.
`$${` writes a literal `${`. The same grammar is checked when a config is parsed
(`conjunction.config.repo_config`) and filled when a trigger is sent (`conjunction.forges.webhook`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

SECRET_PREFIX = "secret:"
PLACEHOLDERS = (
    "event",
    "project",
    "upstream",
    "upstream_sha",
    "upstream_ref",
    "upstream_url",
    "callback_url",
    "callback_token",
    "parent",
    "root",
    "depth",
    "artifacts",
    "change",  # a pre-merge run: the change's URL (CONTRACT §8); else empty
    "kind",  # premerge, or empty
    "step",  # baseline, confirm, retry, bisect, or empty
)
_PLACEHOLDER = re.compile(r"\$(\$?)\{([^{}]*)\}")

Location = tuple[int | str, ...]


def placeholders(value: Any, loc: Location = ()) -> Iterator[tuple[Location, str]]:
    """(location, placeholder) of every placeholder in the strings of a template."""
    if isinstance(value, str):
        for match in _PLACEHOLDER.finditer(value):
            if not match[1]:
                yield loc, match[2]
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from placeholders(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from placeholders(item, (*loc, index))


def secret_name(placeholder: str) -> str | None:
    """`secret:NAME` -> NAME; None for any other placeholder."""
    if placeholder.startswith(SECRET_PREFIX):
        return placeholder.removeprefix(SECRET_PREFIX)
    return None


def problem(placeholder: str) -> str | None:
    """What is wrong with a placeholder, or None when it is one of PLACEHOLDERS or a secret."""
    name = secret_name(placeholder)
    if name is not None:
        return None if name else "${secret:} needs a secret name, like ${secret:acme-ci}"
    if placeholder in PLACEHOLDERS:
        return None
    known = ", ".join(f"${{{p}}}" for p in PLACEHOLDERS)
    return f"unknown placeholder ${{{placeholder}}}; known are {known} and ${{secret:NAME}}"


def fill(value: Any, values: Mapping[str, str], secret: Callable[[str], str]) -> Any:
    """The template with each placeholder replaced by its text, secrets by `secret(name)`.

    KeyError for an unknown placeholder (a parsed config has none)."""

    def replace(match: re.Match[str]) -> str:
        if match[1]:
            return "${" + match[2] + "}"
        name = secret_name(match[2])
        return secret(name) if name is not None else values[match[2]]

    if isinstance(value, str):
        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {key: fill(item, values, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, values, secret) for item in value]
    return value
