"""The per-repository `.conjunction.yml` file: model, parsing with line-numbered problems, schema.

Parsing is bounded by the file's size, aliases included (see `conjunction.config.bounded_yaml`),
and every list holds at most MAX_ITEMS entries, so indexing a file costs little whatever it holds.

Regenerate the committed schema with:
    python -m conjunction.config.repo_config > conjunction/config/conjunction.schema.json
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from conjunction.config import body_template, bounded_yaml, secret_values
from conjunction.names import OWNER_MAX_LENGTH, ProjectName, owner_of, owner_problem

MAX_CONFIG_BYTES = 64 * 1024
MAX_ITEMS = 200  # in any list (upstreams, branches, ...) and in webhook headers
MAX_PROBLEMS = 200  # listed in one error; a check run takes 50 annotations per call


def _owner_name(value: str, info: ValidationInfo) -> str:
    """A user or team as the project's forge spells it (`parse_config`'s `forge`), or as one
    of them does when the forge is not known."""
    if "@" in value:
        shown = repr(value[:40]) + ("…" if len(value) > 40 else "")
        raise ValueError(f"{shown}: write users and teams without '@', like alice or acme/team")
    problem = owner_problem(value, (info.context or {}).get("forge"))
    if problem is not None:
        raise ValueError(problem)
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http(s) URL")
    return value


def _project_glob(value: str) -> str:
    host, slash, path = value.partition("/")
    if not slash or not host or not path or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a project glob: write it like github.com/acme/*")
    return f"{host.lower()}/{path}"


T = TypeVar("T")
OwnerName = Annotated[
    str,
    AfterValidator(_owner_name),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": OWNER_MAX_LENGTH,
            "pattern": "^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
            "(?:/[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)*$",
        }
    ),
]
ProjectGlob = Annotated[str, AfterValidator(_project_glob)]
Items = Annotated[list[T], Field(max_length=MAX_ITEMS)]


class _Model(BaseModel):
    # strict: YAML already yields typed values, so `confirm: 1` or `branches: [1.0]` is a mistake
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@lru_cache(maxsize=256)
def _path_regex(glob: str) -> re.Pattern[str]:
    """`**` crosses '/', `*` and `?` do not; a trailing '/' means everything below."""
    glob = glob.lstrip("/")
    if glob.endswith("/"):
        glob += "**"
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    tokens = re.split(r"(\*\*/|\*\*|\*|\?)", glob)
    return re.compile("".join(wildcards.get(t) or re.escape(t) for t in tokens))


class Upstream(_Model):
    project: ProjectName = Field(description="Upstream project, like github.com/acme/lib.")
    branches: Items[str] | None = Field(
        default=None, description="Branch globs; default: the upstream's default branch."
    )
    tags: Items[str] = Field(default=[], description="Tag globs; default: none.")
    pipelines: Items[str] = Field(
        default=[], description="Upstream workflow names (or globs) that count; default: any."
    )
    paths: Items[str] = Field(
        default=[], description="Only upstream changes touching these path globs; default: any."
    )
    confirm: bool = Field(
        default=False,
        description="Re-run to tell new regressions from flakes and old breakage.",
    )
    bisect: bool = Field(
        default=False,
        description=(
            "Find the upstream commit that broke this project by itself when a new regression "
            "spans several upstream commits (binary search, one run at a time)."
        ),
    )
    bisect_max_runs: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Runs a culprit search may take; then the narrowest range found is reported.",
    )
    premerge: bool | None = Field(
        default=None,
        description="Run against this upstream's unmerged pull/merge requests (they run "
        "unmerged code in this project's CI); default: true when both have the same owner.",
    )

    def premerge_consent(self, downstream: str) -> bool:
        """Whether this downstream runs against the upstream's unmerged changes."""
        if self.premerge is not None:
            return self.premerge
        return owner_of(downstream) == owner_of(self.project)

    def watches_ref(
        self, ref_type: Literal["branch", "tag"], name: str, default_branch: str
    ) -> bool:
        if ref_type == "tag":
            return any(fnmatchcase(name, glob) for glob in self.tags)
        if self.branches is None:
            return name == default_branch
        return any(fnmatchcase(name, glob) for glob in self.branches)

    def watches_pipeline(self, name: str | None) -> bool:
        if not self.pipelines:
            return True
        if name is None:
            return False
        return any(name == p or fnmatchcase(name, p) for p in self.pipelines)

    def watches_paths(self, changed: list[str] | None) -> bool:
        if not self.paths or changed is None:
            return True
        regexes = [_path_regex(glob) for glob in self.paths]
        return any(rx.fullmatch(path.lstrip("/")) for path in changed for rx in regexes)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def _header_names(headers: dict[str, str]) -> dict[str, str]:
    for name in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an HTTP header name")
    return headers


class Webhook(_Model):
    url: Annotated[str, AfterValidator(_http_url)] = Field(description="http(s) URL to call.")
    secret: str | None = Field(
        default=None,
        description="Name of a secret in CONJUNCTION_SECRETS_FILE, never the value; "
        "signs the body (X-Conjunction-Signature-256).",
    )
    method: Literal["POST", "PUT"] = Field(default="POST", description="POST or PUT.")
    headers: Annotated[dict[str, str], AfterValidator(_header_names)] = Field(
        default={},
        max_length=MAX_ITEMS,
        description="Extra headers; values may hold placeholders, e.g. "
        '"Bearer ${secret:bk-token}".',
    )
    format: Literal["json", "form"] = Field(
        default="json",
        description="json, or form (application/x-www-form-urlencoded: the body's top-level "
        "keys become fields, other values their JSON text).",
    )
    body: JsonValue = Field(
        default=None,
        description="Template: any value, with placeholders like ${event} in its strings; "
        "default: the trigger event as JSON.",
    )
    claim: bool = Field(
        default=False,
        description="The request only starts the CI (Zuul's enqueue API, say); the run then "
        "claims its trigger with POST /api/v1/claims and a project token, and is answered "
        "with the trigger event, callback token included.",
    )

    @model_validator(mode="after")
    def _form_body_is_a_mapping(self) -> Webhook:
        if self.format == "form" and self.body is not None and not isinstance(self.body, dict):
            raise ValueError("with format: form, body must be a mapping of field names to values")
        return self


class Trigger(_Model):
    workflow: str | None = Field(
        default=None,
        description="GitHub: workflow_dispatch of this workflow file; "
        "omitted: repository_dispatch.",
    )
    ref: str | None = Field(default=None, description="Ref to run on; default: default branch.")
    webhook: Webhook | None = Field(
        default=None, description="Call this URL instead (Jenkins, Buildkite, Zuul, ...)."
    )

    @model_validator(mode="after")
    def _workflow_or_webhook(self) -> Trigger:
        if self.workflow is not None and self.webhook is not None:
            raise ValueError("set either workflow or webhook, not both")
        return self


class Report(_Model):
    check_run: bool = Field(
        default=True, description='GitHub check run "Conjunction: downstream" on the commit.'
    )
    commit_status: bool = Field(
        default=True, description='Commit status context "conjunction/downstream".'
    )
    required: Items[ProjectGlob] = Field(
        default=[],
        description="Globs of the downstreams whose new regressions fail the check, like "
        "github.com/acme/*; every other downstream is optional. Default (or empty): the "
        "projects of this project's own owner.",
    )
    issues: bool = Field(default=False, description="Also open issues in this repository.")
    pull_request_comment: bool = Field(
        default=True, description="Comment on the pull request that brought the commit."
    )

    def is_required(self, downstream: str, upstream: str) -> bool:
        """Whether the downstream's results may fail the upstream (and open issues there):
        only those matching `required`, by default the upstream's own owner's projects.
        A glob's `*` matches any characters, `/` included; names compare case-insensitively."""
        if not self.required:
            return owner_of(downstream) == owner_of(upstream)
        name = downstream.casefold()
        return any(fnmatchcase(name, glob.casefold()) for glob in self.required)


class Premerge(_Model):
    when: Literal["command", "members", "off"] = Field(
        default="command",
        description="command: only on `/conjunction test`; members: also on every push to a "
        "pull/merge request whose author may write here; off: never.",
    )
    downstreams: Items[ProjectGlob] = Field(
        default=[],
        description="Globs of the downstreams a change is run against; default (or empty): "
        "those matching report.required.",
    )

    def selects(self, downstream: str, upstream: str, report: Report) -> bool:
        if not self.downstreams:
            return report.is_required(downstream, upstream)
        name = downstream.casefold()
        return any(fnmatchcase(name, glob.casefold()) for glob in self.downstreams)


NotifyOn = Literal["new_regression", "fixed", "flaky", "already_broken"]
_IRC_CHANNEL = re.compile(r"[#&][^\s,\x00-\x1f\x7f]{1,49}")


def _irc_server(value: str) -> str:
    host, colon, port = value.rpartition(":") if ":" in value else (value, "", "")
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"{value!r} is not an IRC server: write it like irc.libera.chat:6697")
    if colon and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return value


def _irc_channel(value: str) -> str:
    if not _IRC_CHANNEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an IRC channel: it starts with # or & and has no spaces or commas"
        )
    return value


class NotifyWebhook(_Model):
    url: Annotated[str, AfterValidator(_http_url)] = Field(description="http(s) URL to POST to.")
    secret: str | None = Field(
        default=None,
        description="Name of a secret in CONJUNCTION_SECRETS_FILE that signs the body "
        "(X-Conjunction-Signature-256), never the value.",
    )


class Irc(_Model):
    server: Annotated[str, AfterValidator(_irc_server)] = Field(
        description="host:port; the port defaults to 6697 with TLS, else 6667."
    )
    channel: Annotated[str, AfterValidator(_irc_channel)] = Field(
        description="The channel to join and post in, like #acme."
    )
    tls: bool = Field(default=True, description="Connect with TLS.")

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.server.rpartition(":") if ":" in self.server else (self.server, "", "")
        return host, int(port) if port else (6697 if self.tls else 6667)


class Notify(_Model):
    slack: str | None = Field(
        default=None,
        description="Name of a secret in CONJUNCTION_SECRETS_FILE whose value is a Slack "
        "incoming-webhook URL.",
    )
    webhook: NotifyWebhook | None = Field(default=None, description="A signed JSON POST.")
    irc: Irc | None = Field(default=None, description="An IRC channel.")
    apprise: str | None = Field(
        default=None,
        description="Name of a secret in CONJUNCTION_SECRETS_FILE whose value is an Apprise URL "
        "(Discord, Matrix, Microsoft Teams, e-mail, ntfy, Mastodon, ...).",
    )
    on: Items[NotifyOn] = Field(
        default=["new_regression", "fixed"],
        description="The changes of a pair's state that are told; default: new_regression, fixed.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Notify:
        channels = (self.slack, self.webhook, self.irc, self.apprise)
        if sum(channel is not None for channel in channels) != 1:
            raise ValueError("set exactly one of slack, webhook, irc or apprise")
        return self

    @property
    def kind(self) -> Literal["slack", "webhook", "irc", "apprise"]:
        if self.slack:
            return "slack"
        if self.webhook:
            return "webhook"
        return "irc" if self.irc else "apprise"


class ConjunctionConfig(_Model):
    owners: Items[OwnerName] | None = Field(
        default=None,
        description="Forge users or teams, without '@'; default: CODEOWNERS' catch-all rule.",
    )
    upstreams: Items[Upstream] = Field(
        default=[], description="This project is built and tested against these."
    )
    trigger: Trigger = Field(default=Trigger(), description="How to start this project's pipeline.")
    report: Report = Field(
        default=Report(), description="What this project shows about its downstreams."
    )
    issues: bool = Field(
        default=True, description="Open one issue here per breaking upstream change."
    )
    notify: Items[Notify] = Field(
        default=[],
        description="Channels told when a pair this project is in changes state: Slack, a "
        "signed webhook, IRC or Apprise.",
    )
    premerge: Premerge = Field(
        default=Premerge(),
        description="As an upstream: run unmerged pull/merge requests against downstreams.",
    )


@dataclass(frozen=True)
class ConfigProblem:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        if len(problems) > MAX_PROBLEMS:
            rest = len(problems) - MAX_PROBLEMS
            problems = [*problems[:MAX_PROBLEMS], ConfigProblem(None, "", f"{rest} more problems")]
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


Forge = Literal["github", "gitlab"]
SecretCheck = Callable[[str], str | None]
"""Why the config's project may not use the named secret, or None when it may."""


def parse_config(
    text: str | bytes, *, secrets: SecretCheck | None = None, forge: Forge | None = None
) -> ConjunctionConfig:
    """The config in `text`, or ConfigError listing each problem with its line and key.

    With `secrets`, every secret the config names is checked as well (`conjunction.secrets`). With
    `forge`, owners are checked against that forge's spelling of users and teams; without, a
    name either forge could have is taken."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    if len(raw) > MAX_CONFIG_BYTES:
        message = f"file is {len(raw)} bytes, the limit is {MAX_CONFIG_BYTES}"
        raise ConfigError([ConfigProblem(None, "", message)])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            bad_line = raw[: e.start].count(b"\n") + 1
            raise ConfigError([ConfigProblem(bad_line, "", "not UTF-8 text")]) from None
    try:
        data, root = bounded_yaml.load(text)
    except bounded_yaml.Refused as e:
        raise ConfigError([ConfigProblem(e.line, _dotted(e.path), e.message)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(line, "", f"invalid YAML: {problem}")]) from None
    if data is None:
        message = "the file is empty: write {} to take every default, or keys like upstreams:"
        raise ConfigError([ConfigProblem(1, "", message)])
    if not isinstance(data, dict):
        message = f"expected a mapping of keys like upstreams:, got {_kind(data)}"
        raise ConfigError([ConfigProblem(_line_of(root, ()), "", message)])
    try:
        config = ConjunctionConfig.model_validate(data, context={"forge": forge})
    except ValidationError as e:
        problems = [
            ConfigProblem(_line_of(root, loc), _dotted(loc), _message(err))
            for err in e.errors()
            for loc in [_without_json_tags(err["loc"])]
        ]
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0)) from None
    problems = _repeated_upstreams(config, root) + _reference_problems(config, root, secrets)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    return config


def _repeated_upstreams(config: ConjunctionConfig, root: yaml.Node | None) -> list[ConfigProblem]:
    """An upstream listed twice would start this project's pipeline twice per upstream success."""
    first: dict[str, int] = {}
    problems = []
    for index, upstream in enumerate(config.upstreams):
        seen = first.setdefault(upstream.project.casefold(), index)
        if seen != index:
            loc = ("upstreams", index, "project")
            message = (
                f"{upstream.project} is listed twice (first as upstreams.{seen} on line "
                f"{_line_of(root, ('upstreams', seen))}): list each upstream once"
            )
            problems.append(ConfigProblem(_line_of(root, loc), _dotted(loc), message))
    return problems


def _reference_problems(
    config: ConjunctionConfig, root: yaml.Node | None, secrets: SecretCheck | None
) -> list[ConfigProblem]:
    """Unknown placeholders in the webhook's headers and body; secrets written where their name
    belongs, or in a URL; and (with `secrets`) secrets this project may not use, wherever the
    config names one."""
    problems = []
    named: list[tuple[body_template.Location, str]] = []
    hook = config.trigger.webhook
    if hook is not None:
        if hook.secret is not None:
            named.append((("trigger", "webhook", "secret"), hook.secret))
        found = [
            *body_template.placeholders(hook.headers, ("trigger", "webhook", "headers")),
            *body_template.placeholders(hook.body, ("trigger", "webhook", "body")),
        ]
        for loc, placeholder in found:
            problem = body_template.problem(placeholder)
            name = body_template.secret_name(placeholder)
            if problem is not None:
                problems.append(ConfigProblem(_line_of(root, loc), _dotted(loc), problem))
            elif name is not None:
                named.append((loc, name))
    for index, channel in enumerate(config.notify):
        if channel.slack is not None:
            named.append((("notify", index, "slack"), channel.slack))
        if channel.webhook is not None and channel.webhook.secret is not None:
            named.append((("notify", index, "webhook", "secret"), channel.webhook.secret))
        if channel.apprise is not None:
            named.append((("notify", index, "apprise"), channel.apprise))
    for loc, name in named:
        # a secret written where its name belongs is refused, never looked up or repeated
        problem = secret_values.secret_name_problem(name)
        if problem is None and secrets is not None:
            problem = secrets(name)
        if problem is not None:
            problems.append(ConfigProblem(_line_of(root, loc), _dotted(loc), problem))
    urls: list[tuple[body_template.Location, str]] = []
    if hook is not None:
        urls.append((("trigger", "webhook", "url"), hook.url))
    urls += [
        (("notify", index, "webhook", "url"), channel.webhook.url)
        for index, channel in enumerate(config.notify)
        if channel.webhook is not None
    ]
    for loc, url in urls:
        problem = secret_values.url_problem(url)
        if problem is not None:
            problems.append(ConfigProblem(_line_of(root, loc), _dotted(loc), problem))
    return problems


def _without_json_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic names the kind of each level inside a JsonValue (`body.dict.a.list.0`);
    the file's own path is `body.a.0`."""
    if loc[:3] != ("trigger", "webhook", "body"):
        return loc
    return loc[:3] + loc[4::2]


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node that `loc` reaches (keys count at their own line)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            # keys merged in with `<<:` come first; the mapping's own keys, after them, win
            pair = next((kv for kv in reversed(node.value) if kv[0].value == str(part)), None)
            if pair is None:
                break
            line = pair[0].start_mark.line + 1
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _strip(tp: Any) -> Any:
    """`X | None` -> X, `Annotated[X, ...]` -> X."""
    if get_origin(tp) is Annotated:
        return _strip(get_args(tp)[0])
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not NoneType]
        if len(args) == 1:
            return _strip(args[0])
    return tp


def _type_at(loc: tuple[int | str, ...]) -> Any:
    tp: Any = ConjunctionConfig
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = _strip(field.annotation)
        elif get_origin(tp) in (list, dict):
            tp = _strip(get_args(tp)[-1])
        else:
            return None
    return tp


def _describe(tp: Any, plural: bool = False) -> str | None:
    if get_origin(tp) is list:
        item = _describe(_strip(get_args(tp)[0]), plural=True)
        return item and f"a list of {item}"
    if get_origin(tp) is dict:
        return "a mapping of names to strings"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mappings" if plural else "a mapping"
    names = {str: ("a string", "strings"), bool: ("true or false", "booleans")}
    return names[tp][plural] if tp in names else None


def _kind(value: Any) -> str:
    kinds = {
        NoneType: "nothing (null)",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        datetime.date: "a date",
        datetime.datetime: "a date",
    }
    return kinds.get(type(value), type(value).__name__)


def _message(err: Any) -> str:
    loc, kind = err["loc"], err["type"]
    if kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
        parent = _type_at(loc[:-1])
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
            if close:
                message += f", did you mean {close[0]!r}?"
        return message
    if kind == "missing":
        return "this key is required"
    if kind == "too_long":
        limit, count = err["ctx"]["max_length"], err["ctx"].get("actual_length")
        return f"{count} entries, the limit is {limit}" if count else f"over {limit} entries"
    if kind == "invalid_key":
        return "keys must be strings"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "invalid-json-value":
        got = _kind(err["input"])
        return f"expected text, a number, true, false, null, a list or a mapping, got {got}"
    expected = _describe(_type_at(loc))
    if kind.endswith("_type") and expected:
        return f"expected {expected}, got {_kind(err['input'])}"
    return str(err["msg"])


def json_schema() -> dict[str, Any]:
    schema = ConjunctionConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        # where every server serves it; the server's answer makes it absolute
        "$id": "/schema/conjunction.json",
        **schema,
        "title": "Conjunction repository configuration",
        "description": "The .conjunction.yml file: upstreams this project is built against, "
        "how to trigger its pipeline, and what it reports about its downstreams.",
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
