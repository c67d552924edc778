import json
from pathlib import Path

import pytest

from conjunction.config.bounded_yaml import MAX_DEPTH, MAX_NODES, MAX_TEXT
from conjunction.config.repo_config import (
    MAX_CONFIG_BYTES,
    MAX_ITEMS,
    MAX_PROBLEMS,
    ConfigError,
    ConfigProblem,
    ConjunctionConfig,
    Irc,
    NotifyWebhook,
    Report,
    Trigger,
    Upstream,
    json_schema,
    parse_config,
)

FULL_EXAMPLE = """\
owners: [alice, acme/lib-team]      # forge users or teams, no '@'
upstreams:
  - project: github.com/acme/lib
    branches: [main]
    tags: ["v*"]
    pipelines: [CI]
    paths: ["src/**"]
    confirm: false
trigger:
  workflow: conjunction.yml
  ref: main
report:
  check_run: true
  commit_status: true
  required: []
  issues: false
  pull_request_comment: true
issues: true
notify:
  - slack: acme-slack
  - webhook: {url: "https://hooks.acme.dev/ci", secret: acme-hook}
  - irc: {server: "irc.libera.chat:6697", channel: "#acme", tls: true}
    on: [new_regression, fixed, flaky]
  - apprise: acme-matrix
    on: [new_regression]
"""


def problems(text: str | bytes) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(p) for p in info.value.problems]


def test_full_example_parses_every_value():
    config = parse_config(FULL_EXAMPLE)
    assert config.owners == ["alice", "acme/lib-team"]
    [upstream] = config.upstreams
    assert upstream.project == "github.com/acme/lib"
    assert upstream.branches == ["main"]
    assert upstream.tags == ["v*"]
    assert upstream.pipelines == ["CI"]
    assert upstream.paths == ["src/**"]
    assert upstream.confirm is False
    assert config.trigger.workflow == "conjunction.yml"
    assert config.trigger.ref == "main"
    assert config.trigger.webhook is None
    assert config.report == Report(
        check_run=True, commit_status=True, required=[], issues=False, pull_request_comment=True
    )
    assert config.issues is True
    slack, webhook, irc, apprise = config.notify
    assert (slack.kind, slack.slack, slack.on) == (
        "slack",
        "acme-slack",
        ["new_regression", "fixed"],
    )
    assert webhook.webhook == NotifyWebhook(url="https://hooks.acme.dev/ci", secret="acme-hook")
    assert irc.irc == Irc(server="irc.libera.chat:6697", channel="#acme", tls=True)
    assert (irc.kind, irc.on) == ("irc", ["new_regression", "fixed", "flaky"])
    assert (apprise.kind, apprise.apprise, apprise.on) == (
        "apprise",
        "acme-matrix",
        ["new_regression"],
    )


def test_every_secret_a_channel_names_is_checked():
    allowed = {"acme-slack", "acme-hook"}
    with pytest.raises(ConfigError) as info:
        parse_config(
            FULL_EXAMPLE,
            secrets=lambda name: None if name in allowed else f"no secret {name} here",
        )
    assert [str(p) for p in info.value.problems] == [
        "line 24: notify.3.apprise: no secret acme-matrix here"
    ]


def test_webhook_trigger():
    config = parse_config(
        """\
trigger:
  webhook:
    url: https://ci.acme.dev/generic-webhook-trigger/invoke
    secret: acme-ci
    headers: {X-Token: acme-token}
    body: null
"""
    )
    webhook = config.trigger.webhook
    assert webhook is not None
    assert webhook.url == "https://ci.acme.dev/generic-webhook-trigger/invoke"
    assert webhook.secret == "acme-ci"
    assert webhook.headers == {"X-Token": "acme-token"}
    assert webhook.body is None


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", b"", "---\n"])
def test_an_empty_file_is_an_error(text):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert [str(p) for p in info.value.problems] == [
        "line 1: the file is empty: write {} to take every default, or keys like upstreams:"
    ]


def test_an_empty_mapping_means_defaults():
    config = parse_config("{}\n")
    assert config == ConjunctionConfig()
    assert config.owners is None
    assert config.upstreams == []
    assert config.trigger == Trigger(workflow=None, ref=None, webhook=None)
    assert config.report.check_run and config.report.commit_status
    assert config.report.pull_request_comment and not config.report.issues
    assert config.issues is True
    assert config.notify == []


def test_host_is_lower_cased():
    config = parse_config("upstreams: [{project: GitHub.com/Acme/Lib}]\n")
    assert config.upstreams[0].project == "github.com/Acme/Lib"


def test_typo_key_reports_line_and_field():
    text = """\
upstreams:
  - project: github.com/acme/lib
    brnaches: [main]
"""
    assert problems(text) == [
        "line 3: upstreams.0.brnaches: unknown key 'brnaches', did you mean 'branches'?"
    ]


def test_unknown_top_level_key():
    assert problems("owners: [alice]\n\nupstream: []\n") == [
        "line 3: upstream: unknown key 'upstream', did you mean 'upstreams'?"
    ]


def test_wrong_type_deep_in_list_reports_its_line():
    text = """\
upstreams:
  - project: github.com/acme/lib
    branches: [main]
  - project: gitlab.com/group/sub/app

    branches: 5
"""
    assert problems(text) == [
        "line 6: upstreams.1.branches: expected a list of strings, got a number"
    ]


def test_wrong_item_type_reports_the_item_line():
    text = """\
upstreams:
  - project: github.com/acme/lib
    tags:
      - "v*"
      - 1.0
    confirm: "no"
"""
    assert problems(text) == [
        "line 5: upstreams.0.tags.1: expected a string, got a number",
        "line 6: upstreams.0.confirm: expected true or false, got a string",
    ]


def test_missing_project():
    assert problems("upstreams:\n  - branches: [main]\n") == [
        "line 2: upstreams.0.project: this key is required"
    ]


def test_problem_without_line_or_field():
    assert str(ConfigProblem(None, "", "broken")) == "broken"
    assert str(ConfigProblem(4, "upstreams.0.project", "bad")) == "line 4: upstreams.0.project: bad"


def test_error_message_joins_problems():
    with pytest.raises(ConfigError) as info:
        parse_config("issues: 1\nowners: alice\n")
    assert str(info.value) == (
        "line 1: issues: expected true or false, got a number\n"
        "line 2: owners: expected a list of strings, got a string"
    )


def test_bad_yaml_syntax_reports_line():
    assert problems("owners: [alice]\nupstreams:\n  - project: [github.com/acme/lib\n") == [
        "line 4: invalid YAML: expected ',' or ']', but got '<stream end>'"
    ]


def test_oversized_body_is_refused():
    text = "# " + "x" * MAX_CONFIG_BYTES + "\n"
    assert problems(text) == [f"file is {len(text)} bytes, the limit is {MAX_CONFIG_BYTES}"]
    assert problems(text.encode())[0].startswith("file is")


def test_invalid_utf8_is_refused():
    assert problems(b"owners: [alice]\nissues: \xff\n") == ["line 2: not UTF-8 text"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- github.com/acme/lib\n", "a list"), ("just text\n", "a string"), ("5\n", "a number")],
)
def test_top_level_must_be_a_mapping(text, kind):
    assert problems("# comment\n" + text) == [
        f"line 2: expected a mapping of keys like upstreams:, got {kind}"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "acme/lib",
        "github.com/acme",
        "github/acme/lib",
        "https://github.com/acme/lib",
        "github.com/acme/../lib",
        "github.com/acme/lib name",
        "",
    ],
)
def test_bad_project_name_is_refused(name):
    [problem] = problems(f"upstreams:\n  - project: {json.dumps(name)}\n")
    assert problem.startswith("line 2: upstreams.0.project: not a project name: ")


def test_required_entries_are_project_globs():
    assert problems("report:\n  required:\n    - lib\n    - 'github.com/a b/*'\n") == [
        "line 3: report.required.0: 'lib' is not a project glob: write it like github.com/acme/*",
        "line 4: report.required.1: 'github.com/a b/*' is not a project glob: "
        "write it like github.com/acme/*",
    ]


def test_owners_are_names_a_forge_could_have_at_their_line():
    config = parse_config("owners: [alice, acme/lib-team, john.doe, group/sub/team_1]\n")
    assert config.owners == ["alice", "acme/lib-team", "john.doe", "group/sub/team_1"]
    long = "a" * 300
    text = f"owners:\n  - alice\n  - 'x](https://evil.example) y'\n  - {long}\n  - 'a/'\n"
    assert problems(text) == [
        "line 3: owners.1: 'x](https://evil.example) y' is not a GitHub login or team nor a "
        "GitLab user or group (like alice or acme/lib-team)",
        f"line 4: owners.2: '{'a' * 40}'… is not a GitHub login or team nor a GitLab user or "
        "group (like alice or acme/lib-team)",
        "line 5: owners.3: 'a/' is not a GitHub login or team nor a GitLab user or group "
        "(like alice or acme/lib-team)",
    ]


def test_owners_are_checked_against_the_projects_own_forge():
    with pytest.raises(ConfigError) as info:
        parse_config("owners: [alice, john.doe, -x, acme/core]\n", forge="github")
    assert [str(p) for p in info.value.problems] == [
        "line 1: owners.1: 'john.doe' is not a GitHub login or team (like alice or acme/lib-team)",
        "line 1: owners.2: '-x' is not a GitHub login or team (like alice or acme/lib-team)",
    ]
    assert parse_config("owners: [john.doe, group/sub/app]\n", forge="gitlab").owners == [
        "john.doe",
        "group/sub/app",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config("owners: [a--b.]\n", forge="gitlab")
    assert [str(p) for p in info.value.problems] == [
        "line 1: owners.0: 'a--b.' is not a GitLab user or group path (like alice or group/sub)"
    ]


def test_at_owner_is_refused():
    assert problems("owners:\n  - alice\n  - '@bob'\n") == [
        "line 3: owners.1: '@bob': write users and teams without '@', like alice or acme/team"
    ]


@pytest.mark.parametrize(
    "entry", ["{slack: a, irc: {server: s, channel: '#c'}}", "{slack: a, apprise: b}", "{}"]
)
def test_notify_needs_exactly_one_channel(entry):
    assert problems(f"notify:\n  - slack: ok\n  - {entry}\n") == [
        "line 3: notify.1: set exactly one of slack, webhook, irc or apprise"
    ]


def test_irc_addresses_and_channels():
    assert Irc(server="irc.libera.chat", channel="#a").address == ("irc.libera.chat", 6697)
    assert Irc(server="irc.x", channel="#a", tls=False).address == ("irc.x", 6667)
    assert Irc(server="[::1]:7000", channel="&a").address == ("[::1]", 7000)
    assert problems(
        "notify:\n  - irc: {server: 'irc.x:99999', channel: 'acme'}\n    on: [everything]\n"
    ) == [
        "line 2: notify.0.irc.server: 'irc.x:99999': the port must be a number from 1 to 65535",
        "line 2: notify.0.irc.channel: 'acme' is not an IRC channel: it starts with # or & and "
        "has no spaces or commas",
        "line 3: notify.0.on.0: Input should be 'new_regression', 'fixed', 'flaky' or "
        "'already_broken'",
    ]


def test_notify_unknown_channel():
    assert problems("notify:\n  - email: ops\n") == ["line 2: notify.0.email: unknown key 'email'"]


def test_webhook_url_must_be_http():
    assert problems("trigger:\n  webhook:\n    url: ftp://ci.acme.dev/x\n") == [
        "line 3: trigger.webhook.url: not an http(s) URL"
    ]


def test_trigger_workflow_and_webhook_are_exclusive():
    text = "trigger:\n  workflow: ci.yml\n  webhook: {url: 'https://ci.acme.dev/'}\n"
    assert problems(text) == ["line 1: trigger: set either workflow or webhook, not both"]


def test_repeated_key_is_refused_at_its_line():
    assert problems("issues: true\nissues: maybe\n") == [
        "line 2: issues: duplicate key 'issues', first on line 1"
    ]
    text = """\
upstreams:
  - project: github.com/acme/lib
    branches: [main]
    tags: ["v*"]
    branches: [dev]
"""
    assert problems(text) == [
        "line 5: upstreams.0.branches: duplicate key 'branches', first on line 3"
    ]


def test_repeated_key_written_as_an_alias_is_refused():
    assert problems("trigger: {ref: &k ref}\nreport:\n  *k : 1\n  *k : 2\n") == [
        "line 4: report.ref: duplicate key 'ref', first on line 3"
    ]


def test_repeated_upstream_is_refused_at_its_line():
    text = """\
upstreams:
  - project: github.com/acme/lib
  - project: github.com/acme/app
  - project: GitHub.com/ACME/Lib
    branches: [dev]
"""
    assert problems(text) == [
        "line 4: upstreams.2.project: github.com/ACME/Lib is listed twice "
        "(first as upstreams.0 on line 2): list each upstream once"
    ]


def test_alias_bomb_is_refused():
    """14,000 references to one upstream with 10,000 branches: 62 KB that stood for 140 million."""
    branches = ",".join(["a"] * 10_000)
    text = f"upstreams: [&u {{project: github.com/a/b, branches: [{branches}]}}, "
    text += ",".join(["*u"] * 14_000) + "]\n"
    assert len(text) < MAX_CONFIG_BYTES
    assert problems(text) == [
        f"line 1: upstreams.0.branches: more than {MAX_NODES} values, "
        "counting what each alias repeats"
    ]


def test_aliases_count_as_what_they_repeat():
    entry = ", ".join(f"b{n}" for n in range(150))
    text = f"upstreams:\n  - &u {{project: github.com/a/b, branches: [{entry}]}}\n"
    text += "".join("  - *u\n" for _ in range(100))
    assert problems(text) == [
        f"line 66: upstreams: more than {MAX_NODES} values, counting what each alias repeats"
    ]


def test_nested_aliases_are_refused_early():
    """Each level repeats the one before ten times: a billion values in ten lines."""
    lines = ["owners: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, previous in zip("bcdefghij", "abcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    assert problems("\n".join(lines)) == [
        f"line 4: d: more than {MAX_NODES} values, counting what each alias repeats"
    ]


def test_aliased_text_counts_its_length():
    text = "trigger:\n  ref: &r '" + "x" * 30_000 + "'\nowners: [*r, *r, *r]\n"
    assert problems(text) == [
        f"line 3: owners: more than {MAX_TEXT} characters of text, counting what each alias repeats"
    ]


def test_alias_inside_its_own_anchor_is_refused():
    assert problems("owners: &o [alice, *o]\n") == [
        "line 1: owners: alias *o is inside the node it names"
    ]


def test_shared_values_by_alias_and_merge_key():
    text = """\
upstreams:
  - &lib
    project: github.com/acme/lib
    branches: &release [main, "release/*"]
    paths: ["src/**"]
  - <<: *lib
    project: github.com/acme/app
  - project: github.com/acme/cli
    branches: *release
"""
    lib, app, cli = parse_config(text).upstreams
    assert (app.project, app.branches, app.paths) == (
        "github.com/acme/app",
        ["main", "release/*"],
        ["src/**"],
    )
    assert lib.branches == cli.branches == ["main", "release/*"]
    assert cli.paths == []


def test_deep_nesting_is_refused_at_its_line():
    assert problems("[" * 30_000) == [
        "line 1: " + ".".join(["0"] * (MAX_DEPTH - 1)) + f": nested deeper than {MAX_DEPTH} levels"
    ]
    text = "owners: [alice]\nupstreams:\n  - project: github.com/acme/lib\n    branches: "
    assert problems(text + "[" * 100 + "main" + "]" * 100) == [
        "line 4: upstreams.0.branches" + ".0" * (MAX_DEPTH - 4) + ": nested deeper than "
        f"{MAX_DEPTH} levels"
    ]


def test_depth_counts_what_an_alias_repeats():
    deep = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    assert problems(f"owners: &d {deep}\nnotify: [[*d]]\n") == [
        f"line 2: notify.0: nested deeper than {MAX_DEPTH} levels once aliases are expanded"
    ]


def test_long_lists_are_refused():
    upstreams = "".join(f"  - project: github.com/acme/lib{n}\n" for n in range(MAX_ITEMS + 1))
    assert problems(f"upstreams:\n{upstreams}") == [
        f"line 1: upstreams: {MAX_ITEMS + 1} entries, the limit is {MAX_ITEMS}"
    ]
    branches = ", ".join(f"b{n}" for n in range(MAX_ITEMS + 1))
    assert problems(f"upstreams:\n  - project: github.com/a/b\n    branches: [{branches}]\n") == [
        f"line 3: upstreams.0.branches: {MAX_ITEMS + 1} entries, the limit is {MAX_ITEMS}"
    ]
    headers = ", ".join(f"h{n}: v" for n in range(MAX_ITEMS + 1))
    assert problems(
        f"trigger:\n  webhook: {{url: 'https://ci.acme.dev/', headers: {{{headers}}}}}"
    ) == [f"line 2: trigger.webhook.headers: over {MAX_ITEMS} entries"]


def test_problems_beyond_the_limit_are_counted_not_listed():
    owners = "".join(f"  - '@user{n}'\n" for n in range(MAX_ITEMS))
    required = "".join(f"    - lib{n}\n" for n in range(MAX_ITEMS))
    listed = problems(f"owners:\n{owners}report:\n  required:\n{required}")
    assert len(listed) == MAX_PROBLEMS + 1
    assert (
        listed[0]
        == "line 2: owners.0: '@user0': write users and teams without '@', like alice or acme/team"
    )
    assert listed[-1] == f"{2 * MAX_ITEMS - MAX_PROBLEMS} more problems"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2001-13-01", "cannot read '2001-13-01' as timestamp"),
        ("1" * 5_000, f"cannot read '{'1' * 37}...' as int"),
        ("!!int ''", "cannot read '' as int"),
        ("!!bool ''", "cannot read '' as bool"),
        ("!!timestamp ''", "cannot read '' as timestamp"),
    ],
)
def test_values_yaml_cannot_build_are_problems(value, problem):
    assert problems(f"owners: [alice]\nissues: {value}\n") == [f"line 2: invalid YAML: {problem}"]


def test_watches_ref():
    default = Upstream(project="github.com/acme/lib")
    assert default.watches_ref("branch", "main", "main")
    assert not default.watches_ref("branch", "dev", "main")
    assert not default.watches_ref("tag", "v1.0", "main")

    globs = Upstream(project="github.com/acme/lib", branches=["main", "release/*"], tags=["v*"])
    assert globs.watches_ref("branch", "release/1.x", "trunk")
    assert not globs.watches_ref("branch", "trunk", "trunk")
    assert globs.watches_ref("tag", "v2.0.1", "main")
    assert not globs.watches_ref("tag", "2.0.1", "main")
    assert not globs.watches_ref("branch", "v2", "main")

    tags_only = Upstream(project="github.com/acme/lib", branches=[], tags=["*"])
    assert not tags_only.watches_ref("branch", "main", "main")


def test_watches_pipeline():
    anything = Upstream(project="github.com/acme/lib")
    assert anything.watches_pipeline("CI")
    assert anything.watches_pipeline(None)

    some = Upstream(project="github.com/acme/lib", pipelines=["CI", "Build [linux]", "test-*"])
    assert some.watches_pipeline("CI")
    assert some.watches_pipeline("Build [linux]")
    assert some.watches_pipeline("test-unit")
    assert not some.watches_pipeline("ci")
    assert not some.watches_pipeline("Lint")
    assert not some.watches_pipeline(None)


def test_watches_paths():
    anything = Upstream(project="github.com/acme/lib")
    assert anything.watches_paths(["README.md"])
    assert anything.watches_paths(None)

    src = Upstream(project="github.com/acme/lib", paths=["src/**", "*.toml", "docs/"])
    assert src.watches_paths(["README.md", "src/acme/deep/mod.py"])
    assert src.watches_paths(["pyproject.toml"])
    assert src.watches_paths(["docs/a/b.md"])
    assert src.watches_paths(None)
    assert not src.watches_paths(["sub/pyproject.toml"])
    assert not src.watches_paths(["README.md", "srcx/a.py", "tests/src/a.py"])
    assert not src.watches_paths([])

    nested = Upstream(project="github.com/acme/lib", paths=["**/*.h", "lib/?.c"])
    assert nested.watches_paths(["a.h"])
    assert nested.watches_paths(["include/acme/a.h"])
    assert nested.watches_paths(["lib/x.c"])
    assert not nested.watches_paths(["lib/xy.c", "lib/a/b.c", "a.hpp"])


def test_only_the_upstreams_own_owner_is_required_by_default():
    lib = "github.com/acme/lib"
    assert Report().is_required("github.com/Acme/app", lib)
    assert not Report().is_required("github.com/stranger/app", lib)
    assert not Report().is_required("gitlab.com/acme/app", lib)  # another host, another owner
    assert Report().is_required("gitlab.com/group/sub/app", "gitlab.com/group/lib")


def test_required_globs():
    lib = "github.com/acme/lib"
    report = Report(required=["github.com/acme/App", "GitHub.com/friends/*"])
    assert report.is_required("GitHub.com/acme/app", lib)
    assert not report.is_required("github.com/acme/other", lib)
    assert report.is_required("github.com/friends/x", lib)
    assert report.is_required("github.com/friends/sub/y", lib)  # `*` crosses '/'
    assert not report.is_required("github.com/stranger/x", lib)


def test_committed_schema_is_current():
    path = Path(__file__).parent.parent / "conjunction" / "config" / "conjunction.schema.json"
    assert json.loads(path.read_text()) == json_schema()


def test_schema_describes_the_file():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "/schema/conjunction.json"  # the path every server serves it at
    assert schema["title"] == "Conjunction repository configuration"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["upstreams"]["maxItems"] == MAX_ITEMS
    branches = schema["$defs"]["Upstream"]["properties"]["branches"]["anyOf"][0]
    assert branches["maxItems"] == MAX_ITEMS
    assert set(schema["properties"]) == {
        "owners",
        "upstreams",
        "trigger",
        "report",
        "issues",
        "notify",
        "premerge",
    }


def test_a_plain_on_key_is_text_and_on_as_a_value_stays_a_boolean():
    config = parse_config("notify:\n  - slack: s\n    on: [fixed]\nissues: on\n")
    assert config.notify[0].on == ["fixed"]
    assert config.issues is True
    assert problems("on: 1\n") == ["line 1: on: unknown key 'on'"]
