"""Fuzzing the `.conjunction.yml` parser: whatever the text, a config or a ConfigError.

A quick pass runs with the suite; `CONJUNCTION_FUZZ=long` runs a long one (see conftest.py).
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from conjunction.config.repo_config import (
    ConfigError,
    ConjunctionConfig,
    Notify,
    Report,
    Trigger,
    Upstream,
    Webhook,
    parse_config,
)

KEYS = sorted(
    {
        name
        for model in (ConjunctionConfig, Upstream, Trigger, Webhook, Report, Notify)
        for name in model.model_fields
    }
)
WORDS = [
    "github.com/acme/lib",
    "GitHub.com/Acme/Lib",
    "gitlab.com/group/sub/app",
    "main",
    "release/*",
    "v*",
    "alice",
    "@bob",
    "https://ci.acme.dev/hook",
    "2001-13-01",
    "2001-12-14t21:59:43.10-05:00",
    "0x1F",
    "0o17",
    "190:20:30",
    "1e400",
    ".nan",
    "~",
    "yes",
    "<<",
]
# pieces of YAML syntax: indicators, anchors and aliases, tags, documents, escapes
SYNTAX = [
    ": ",
    ":",
    "- ",
    "-",
    "? ",
    ", ",
    ",",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "\n  ",
    "\n    ",
    " ",
    "\t",
    "#",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: *a",
    "!!str ",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!timestamp ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "!!python/object ",
    "!local ",
    "|",
    ">-",
    "'",
    '"',
    "\\",
    "\\x",
    "\\u00",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "\ufeff",
    "\x00",
    "\x85",
    "\u2028",
    "é",
    "1" * 5000,
]

yamlish = st.lists(
    st.sampled_from(SYNTAX) | st.sampled_from(KEYS) | st.sampled_from(WORDS) | st.text(max_size=4),
    max_size=80,
).map("".join)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.dates()
    | st.sampled_from(WORDS)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS) | st.text(max_size=6) | st.integers(), inner, max_size=5
        )
    ),
    max_leaves=10,
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Config-shaped documents; a part used twice is written once with an anchor, then aliased."""
    shared = draw(st.lists(values, max_size=3) | st.dictionaries(st.sampled_from(KEYS), values))
    document = draw(
        st.dictionaries(
            st.sampled_from(KEYS),
            values | st.just(shared) | st.lists(st.just(shared) | values, max_size=4),
            max_size=7,
        )
    )
    return yaml.safe_dump(document, default_flow_style=draw(st.sampled_from([None, True, False])))


def config_or_error(text: str | bytes) -> ConjunctionConfig | ConfigError:
    """Anything but a config or a ConfigError (a crash, a RecursionError) fails the test."""
    try:
        return parse_config(text)
    except ConfigError as exc:
        assert exc.problems
        return exc


@given(yamlish)
def test_yaml_like_text(text: str) -> None:
    config_or_error(text)


@given(st.binary(max_size=200) | yamlish.map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_bytes(data: bytes) -> None:
    config_or_error(data)


@given(documents())
def test_structured_documents(text: str) -> None:
    outcome: Any = config_or_error(text)
    if isinstance(outcome, ConjunctionConfig):
        assert parse_config(yaml.safe_dump(outcome.model_dump(exclude_defaults=True))) == outcome
