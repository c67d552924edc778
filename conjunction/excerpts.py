"""Failure excerpts: the few lines of a failing downstream run that say why it failed.

A run's log, its CI's annotations or the summary a CI sent are cut here to a bounded excerpt
(the last `MAX_LINES` lines that say something, at most `MAX_BYTES`), with colour codes, the
timestamps GitHub prefixes and anything that looks like a secret taken out, and the failure
classified as Crater classifies its own (`Cause`). All pure; the `excerpt` job
(`conjunction.engine.excerpts`) fetches the text once and stores what `cut` makes of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from conjunction.markdown import safe_url

MAX_LINES = 20
MAX_BYTES = 2048
LINE_CHARS = 300  # of one line; a longer one ends in "…"
EXCERPTS_SHOWN = 10  # in one report: the first failing rows' excerpts, the rest on their pages
RAW_LINES = 400  # of a log's end read for them: blank lines, groups and cleanup included


class Cause(StrEnum):
    """Why a run failed, where its output says so: shown as a small label."""

    TEST = "test failure"
    BUILD = "build error"
    TIMEOUT = "timed out"
    INFRA = "infrastructure"


class Source(StrEnum):
    """Where an excerpt came from."""

    ANNOTATIONS = "annotations"  # GitHub's check run annotations of the failed job
    LOG = "log"  # the tail of the failed job's log (GitHub, Gitea) or trace (GitLab)
    CI = "ci"  # the `metadata.summary` a CI sent with its status


SOURCE_WORDS = {
    Source.ANNOTATIONS: "the failed job's annotations",
    Source.LOG: "the end of the failed job's log",
    Source.CI: "what its CI reported",
}


@dataclass(frozen=True)
class Excerpt:
    """What a failing run's page, report, issue and comment show of why it failed."""

    text: str
    source: Source
    cause: Cause | None = None
    log_url: str | None = None  # where the whole log is, when known

    @property
    def origin(self) -> str:
        """Where the lines come from, in words."""
        return SOURCE_WORDS[self.source]

    @property
    def headline(self) -> str:
        """The one line that says why (`key_line`)."""
        return key_line(self.text, self.cause)

    def stored(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source.value,
            "cause": self.cause.value if self.cause else None,
            "log_url": self.log_url,
        }

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Excerpt | None:
        """The excerpt an event keeps (`Event.excerpt`), if any."""
        if not stored or (not stored.get("text") and not stored.get("cause")):
            return None
        cause, source, log_url = stored.get("cause"), stored.get("source"), stored.get("log_url")
        return cls(
            str(stored.get("text") or ""),
            Source(source) if source in set(Source) else Source.LOG,
            Cause(cause) if cause in set(Cause) else None,
            log_url if isinstance(log_url, str) else None,
        )


@dataclass(frozen=True)
class FailureText:
    """What a runner found of a failed run: its annotations' messages or its log, raw."""

    source: Source
    text: str
    log_url: str | None = None


@runtime_checkable
class FailureLogs(Protocol):
    """A runner that can tell why one of its runs failed (GitHub Actions, GitLab CI, Gitea
    Actions)."""

    async def failure_text(self, project: str, run_id: str) -> FailureText | None:
        """The failed job's annotations, else its log; None when the run has no failed job,
        or when the forge refuses or fails to answer (logged; asked once, never again)."""
        ...


# -- cutting ---------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_GITHUB_TIME = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_GITLAB_SECTION = re.compile(r"section_(?:start|end):\d+:[\w.-]+(?:\[[^\]\r\n]*\])?\r?")
_GITHUB_ERROR = re.compile(r"^##\[(error|warning)\]")
_NOISE = re.compile(
    r"^(?:##\[(?:end)?group\]|##\[debug\]|\[command\]|Post job cleanup|Cleaning up orphan"
    r"|Job succeeded|Job failed|ERROR: Job failed: exit code"
    r"|Cleaning up container for job|\U0001f3c1\s+Job (?:succeeded|failed))"  # Gitea's runner
)
_GENERIC = re.compile(r"^(?:Error: )?Process completed with exit code \d+\.?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_lines(log: str) -> list[str]:
    """The log's lines as a person reads them: no colour codes, GitHub's timestamps, GitLab's
    section markers or progress bars overwritten by `\\r`; GitHub's `##[error]` as `Error: `."""
    lines = []
    for raw in log.replace("\r\n", "\n").split("\n"):
        line = _GITLAB_SECTION.sub("", _ANSI.sub("", raw))
        line = line.rsplit("\r", 1)[-1]  # what a progress bar ended on
        line = _GITHUB_TIME.sub("", line)
        line = _GITHUB_ERROR.sub(lambda m: m[1].capitalize() + ": ", line)
        lines.append(_CONTROL.sub("", line).rstrip())
    return lines


def _relevant(line: str) -> bool:
    return bool(line.strip()) and not _NOISE.match(line) and not _GENERIC.match(line.strip())


def tail(log: str) -> list[str]:
    """The lines that say why: those before GitHub's last `##[error]` line (where the failed
    step ended, before the post-job steps) or the log's end, the last MAX_LINES that say
    something (no blank lines, group markers or cleanup). Only the last RAW_LINES lines before
    that end are read, so a log of many megabytes costs no more than a short one."""
    error = log.rfind("##[error]")
    line_end = log.find("\n", error) if error != -1 else -1
    end = line_end if line_end != -1 else len(log)
    raw = log[:end].rsplit("\n", RAW_LINES)[-RAW_LINES:]
    kept = [line for line in clean_lines("\n".join(raw)) if _relevant(line)]
    return kept[-MAX_LINES:]


def bounded(lines: Sequence[str], limit: int = MAX_BYTES) -> str:
    """The last lines that fit in `limit` bytes of UTF-8, each cut to LINE_CHARS."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-MAX_LINES:]):
        if len(line) > LINE_CHARS:
            line = line[: LINE_CHARS - 1] + "…"
        cost = len(line.encode()) + (1 if kept else 0)
        if size + cost > limit:
            if not kept:  # one line longer than the limit: its start
                kept.append(line.encode()[: limit - 3].decode(errors="ignore") + "…")
            break
        kept.append(line)
        size += cost
    return "\n".join(reversed(kept))


# -- redacting -------------------------------------------------------------------------------

REDACTED = "[redacted]"
_SECRETS = [
    # GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), GitLab's (glpat-, gldt-, …)
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"\bgl(?:pat|dt|rt|cbt|ptt|ft|imt|agent|oas|soat|ffct)-[A-Za-z0-9_-]{16,}"),
    re.compile(r"\b(?:xox[abpors]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|npm_[A-Za-z0-9]{30,})"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # a JWT
]
# `Authorization: Bearer x`, `password=x`, `"token": "x"`: the value after the name
_NAMED = re.compile(
    r"(?i)(\b(?:authorization|proxy-authorization)\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?"
    r"|\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"',;&]+)"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@")


def redact(text: str) -> str:
    """The text with whatever looks like a secret replaced by `[redacted]`: forge and cloud
    tokens, the value of an `Authorization:` header or a `password=`-like setting, and the
    credentials in a URL."""
    for pattern in _SECRETS:
        text = pattern.sub(REDACTED, text)
    text = _NAMED.sub(lambda m: m[1] + REDACTED, text)
    return _URL_CREDENTIALS.sub(lambda m: f"{m[1]}{REDACTED}@", text)


# -- classifying -----------------------------------------------------------------------------

_CAUSES = [
    (
        Cause.TIMEOUT,
        re.compile(
            r"(?i)timed out|time ?out (?:exceeded|reached|after)|exceeded the maximum execution"
            r"|execution took longer than|deadline exceeded"
        ),
    ),
    (
        Cause.INFRA,
        re.compile(
            r"(?i)no space left on device|runner (?:has received a shutdown signal|system failure)"
            r"|lost communication with the server|could not resolve host|connection reset"
            r"|temporary failure in name resolution|service unavailable|\b50[234]\b.*(?:error|"
            r"gateway|unavailable)|toomanyrequests|rate limit|out of memory|oomkilled"
            r"|the hosted runner|unable to access"
        ),
    ),
    (
        Cause.TEST,
        re.compile(
            r"(?i)\bFAILED\b.*::|\b\d+ failed\b|test result: FAILED|tests? failed|^--- FAIL"
            r"|^FAIL[: ]|^not ok \d|AssertionError|assert(?:ion)? (?:failed|error)"
            r"|failures?: [1-9]|Tests run:.*Failures: [1-9]|✗|✕"
        ),
    ),
    (
        Cause.BUILD,
        re.compile(
            r"(?i)\berror(?:\[E\d+\])?:|compil(?:e|ation) (?:error|failed)|cannot find symbol"
            r"|SyntaxError|ModuleNotFoundError|ImportError|undefined reference|make: \*\*\*"
            r"|BUILD FAILED|npm ERR!|could not resolve dependencies|error TS\d+|fatal error"
        ),
    ),
]


def classify(lines: Iterable[str], result: str | None = None) -> Cause | None:
    """Why the run failed, from its result (a time-out is one) and its lines, most specific
    first: timed out, infrastructure, a test failure, a build error; None when nothing says."""
    if result == "timed_out":
        return Cause.TIMEOUT
    text = list(lines)
    for cause, pattern in _CAUSES:
        if any(pattern.search(line) for line in text):
            return cause
    return None


def key_line(text: str, cause: Cause | None) -> str:
    """The line of an excerpt that says why: the first that shows its cause (the first failed
    test, the first compiler error), else its last."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    pattern = dict(_CAUSES).get(cause) if cause is not None else None
    telling = [line for line in lines if pattern.search(line)] if pattern is not None else []
    return telling[0] if telling else lines[-1] if lines else ""


def cut(found: FailureText, result: str | None = None) -> Excerpt | None:
    """The excerpt of what a runner found or a CI sent: bounded, redacted, classified, its
    log's address kept only when it is a safe http(s) URL; None when nothing is left of it."""
    lines = tail(found.text)
    text = bounded([redact(line) for line in lines])
    cause = classify(lines, result)
    if not text and cause is None:
        return None
    return Excerpt(text, found.source, cause, safe_url(found.log_url))


def annotations_text(annotations: Iterable[Mapping[str, Any]]) -> str:
    """GitHub check run annotations of level `failure` as lines (`path:line: title: message`),
    without the generic `Process completed with exit code N.`."""
    lines = []
    for item in annotations:
        if item.get("annotation_level") != "failure":
            continue
        message = str(item.get("message") or "").strip()
        if not message or _GENERIC.match(message):
            continue
        path = item.get("path")
        where = f"{path}:{item.get('start_line')}: " if path and path != ".github" else ""
        title = str(item.get("title") or "").strip()
        lines.append(where + (f"{title}: " if title else "") + message)
    return "\n".join(lines)
