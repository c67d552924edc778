"""`trigger.webhook` in `.conjunction.yml`: method, format, headers and a body template of any
YAML value, with each problem on its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conjunction.config.body_template import fill, placeholders
from conjunction.config.repo_config import ConfigError, json_schema, parse_config

HEADER = """\
trigger:
  webhook:
    url: https://ci.acme.dev/hook
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(problem) for problem in caught.value.problems]


def test_every_key_of_the_contract() -> None:
    config = parse_config(
        HEADER
        + """\
    secret: acme-ci
    method: PUT
    headers: {Authorization: "Bearer ${secret:bk-token}"}
    format: form
    body:
      comments: "${upstream} at ${upstream_sha}"
      properties: {event: "${event}", depth: 2, kept: [true, null, 1.5]}
    claim: true
"""
    )
    hook = config.trigger.webhook
    assert hook is not None
    assert (hook.secret, hook.method, hook.format, hook.claim) == ("acme-ci", "PUT", "form", True)
    assert hook.headers == {"Authorization": "Bearer ${secret:bk-token}"}
    assert hook.body == {
        "comments": "${upstream} at ${upstream_sha}",
        "properties": {"event": "${event}", "depth": 2, "kept": [True, None, 1.5]},
    }


def test_defaults() -> None:
    hook = parse_config(HEADER).trigger.webhook
    assert hook is not None
    assert (hook.method, hook.format, hook.headers, hook.body, hook.secret, hook.claim) == (
        "POST",
        "json",
        {},
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "    body: {a: [1, '${nope}']}\n",
            "line 4: trigger.webhook.body.a.1: unknown placeholder ${nope}; known are ${event}, ",
        ),
        (
            "    headers: {X-Who: '${secret:}'}\n",
            "line 4: trigger.webhook.headers.X-Who: ${secret:} needs a secret name, like "
            "${secret:acme-ci}",
        ),
        (
            "    headers: {'Bad Header': x}\n",
            "line 4: trigger.webhook.headers: 'Bad Header' is not an HTTP header name",
        ),
        ("    method: GET\n", "line 4: trigger.webhook.method: Input should be 'POST' or 'PUT'"),
        ("    format: xml\n", "line 4: trigger.webhook.format: Input should be 'json' or 'form'"),
        ("    claim: yes please\n", "line 4: trigger.webhook.claim: expected true or false, got"),
        (
            "    format: form\n    body: [a, b]\n",
            "line 2: trigger.webhook: with format: form, body must be a mapping of field names",
        ),
        (
            "    body:\n      when: 2024-05-01\n",
            "line 5: trigger.webhook.body.when: expected text, a number, true, false, null, a "
            "list or a mapping, got a date",
        ),
    ],
)
def test_problems_name_their_line(extra: str, problem: str) -> None:
    [found] = problems(HEADER + extra)
    assert found.startswith(problem)


def test_a_literal_dollar_brace_is_written_twice() -> None:
    config = parse_config(HEADER + "    body: {script: 'echo $${HOME} ${event}'}\n")
    hook = config.trigger.webhook
    assert hook is not None
    assert list(placeholders(hook.body)) == [(("script",), "event")]
    assert fill(hook.body, {"event": "e1"}, lambda name: "") == {"script": "echo ${HOME} e1"}


def test_placeholders_are_documented_in_the_schema() -> None:
    webhook = json_schema()["$defs"]["Webhook"]["properties"]
    assert set(webhook) == {"url", "secret", "method", "headers", "format", "body", "claim"}
    assert webhook["method"]["enum"] == ["POST", "PUT"]
    assert (webhook["claim"]["type"], webhook["claim"]["default"]) == ("boolean", False)
    assert "POST /api/v1/claims" in webhook["claim"]["description"]
    assert "${event}" in webhook["body"]["description"]


def test_the_readme_examples_are_valid_configs() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Webhook triggers", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert len(examples) == 3
    hooks = [
        parse_config(example, secrets=lambda name: None).trigger.webhook for example in examples
    ]
    assert all(hook is not None and hook.body is not None for hook in hooks)
    assert [hook.claim for hook in hooks if hook is not None] == [False, False, True]
