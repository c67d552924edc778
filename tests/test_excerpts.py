"""Failure excerpts, the pure part: a log cut to the lines that say why, secrets redacted, the
failure classified, and the excerpt shown inert wherever it is posted."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conjunction import markdown, texts
from conjunction.engine import reports
from conjunction.excerpts import (
    EXCERPTS_SHOWN,
    MAX_BYTES,
    MAX_LINES,
    Cause,
    Excerpt,
    FailureText,
    Source,
    annotations_text,
    bounded,
    classify,
    clean_lines,
    cut,
    key_line,
    redact,
    tail,
)
from conjunction.models import Event
from tests.fakegitea import ACTIONS_LOG

# A GitHub Actions job log as its logs endpoint serves it: a timestamp on every line, colour
# codes, groups, the failed step's output, GitHub's error line, then the post-job steps.
GITHUB_LOG = "\n".join(
    [
        "2026-12-07T10:00:00.0000000Z ##[group]Run actions/checkout@v4",
        "2026-12-07T10:00:00.1000000Z with:",
        "2026-12-07T10:00:00.2000000Z ##[endgroup]",
        "2026-12-07T10:00:01.0000000Z ##[group]Run pytest -q",
        "2026-12-07T10:00:01.1000000Z \x1b[36;1mpytest -q\x1b[0m",
        "2026-12-07T10:00:01.2000000Z ##[endgroup]",
        *[f"2026-12-07T10:00:02.{i:07d}Z tests/test_{i}.py ." for i in range(30)],
        "2026-12-07T10:00:03.0000000Z \x1b[31mFAILED\x1b[0m tests/test_parse.py::test_name"
        " - KeyError: 'name'",
        "2026-12-07T10:00:03.1000000Z \x1b[31m1 failed, 30 passed in 0.52s\x1b[0m",
        "2026-12-07T10:00:03.2000000Z ##[error]Process completed with exit code 1.",
        "2026-12-07T10:00:04.0000000Z Post job cleanup.",
        "2026-12-07T10:00:04.1000000Z [command]/usr/bin/git version",
        "2026-12-07T10:00:04.2000000Z git version 2.47.1",
        "2026-12-07T10:00:04.3000000Z Cleaning up orphan processes",
    ]
)

GITLAB_TRACE = (
    "\x1b[0KRunning with gitlab-runner 17.5.0\n"
    "section_start:1733565600:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting step_script\x1b[0;m\n"
    "$ cargo build\n"
    "   Compiling app v0.1.0\n"
    "Downloading crates ... 10%\rDownloading crates ... 100%\n"
    "\x1b[0m\x1b[1m\x1b[38;5;9merror[E0425]\x1b[0m: cannot find value `x` in this scope\n"
    " --> src/main.rs:2:5\n"
    "section_end:1733565660:step_script\r\x1b[0K\n"
    "\x1b[31;1mERROR: Job failed: exit code 101\n\x1b[0;m\n"
)


def test_a_github_log_is_cut_to_the_failed_steps_last_lines() -> None:
    lines = tail(GITHUB_LOG)
    assert len(lines) == MAX_LINES
    # it ends where the failed step did: the post-job steps and GitHub's generic exit line
    # are not why it failed
    assert lines[-3:] == [
        "tests/test_29.py .",
        "FAILED tests/test_parse.py::test_name - KeyError: 'name'",
        "1 failed, 30 passed in 0.52s",
    ]
    assert not any("cleanup" in line or "git version" in line for line in lines)
    assert not any(re.match(r"\d{4}-\d\d-\d\dT", line) or "\x1b" in line for line in lines)


def test_a_log_of_many_megabytes_is_read_from_its_end() -> None:
    """Only the end of a long log is read: the same lines as a short one's with that end."""
    start, end = GITHUB_LOG.split("##[group]Run pytest -q")
    long_log = start + "".join(f"line {i} of the checkout\n" for i in range(200_000)) + end
    assert len(long_log) > 4_000_000
    assert tail(long_log) == tail(GITHUB_LOG)


def test_a_gitlab_trace_loses_its_section_markers_colours_and_progress_bars() -> None:
    assert [line for line in clean_lines(GITLAB_TRACE) if line] == [
        "Running with gitlab-runner 17.5.0",
        "Executing step_script",
        "$ cargo build",
        "   Compiling app v0.1.0",
        "Downloading crates ... 100%",
        "error[E0425]: cannot find value `x` in this scope",
        " --> src/main.rs:2:5",
        "ERROR: Job failed: exit code 101",
    ]
    assert tail(GITLAB_TRACE)[-2:] == [
        "error[E0425]: cannot find value `x` in this scope",
        " --> src/main.rs:2:5",
    ]


def test_a_gitea_log_loses_its_timestamps_and_the_runners_closing_lines() -> None:
    """It ends where the failed step did: the runner's `Cleaning up container for job test`
    and `🏁  Job failed` after it are not why it failed."""
    assert tail(ACTIONS_LOG)[-3:] == [
        "FAILED tests/test_api.py::test_parse - AssertionError: assert 2 == 3",
        "using GITEA_TOKEN=0123456789abcdef0123456789abcdef01234567",
        "============ 1 failed, 12 passed in 0.41s ============",
    ]


def test_an_excerpt_is_at_most_2_kb_and_its_newest_lines() -> None:
    lines = [f"line {i} " + "é" * 150 for i in range(MAX_LINES)]
    text = bounded(lines)
    assert len(text.encode()) <= MAX_BYTES
    assert text.endswith(lines[-1])
    assert "line 0 " not in text  # the oldest went first
    one = bounded(["x" * 5000])  # one line longer than everything: its start, cut
    assert len(one.encode()) <= MAX_BYTES and one.endswith("…")


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("token ghp_" + "a" * 36 + " used", "token [redacted] used"),
        ("export GH=github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "export GH=[redacted]"),
        ("glpat-abcdefghij0123456789 in env", "[redacted] in env"),
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"),
        ("curl -H 'authorization: token s3cr3t' x", "curl -H 'authorization: token [redacted]' x"),
        ("mysql --password=hunter2 -u root", "mysql --password=[redacted] -u root"),
        ('{"api_key": "k-123"}', '{"api_key": "[redacted]"}'),
        (
            "fatal: unable to access 'https://bot:s3cr3t@github.com/a/b.git/'",
            "fatal: unable to access 'https://[redacted]@github.com/a/b.git/'",
        ),
        ("FAILED tests/test_parse.py::test_name", "FAILED tests/test_parse.py::test_name"),
    ],
)
def test_secrets_are_redacted(line: str, kept: str) -> None:
    assert redact(line) == kept


@pytest.mark.parametrize(
    ("lines", "result", "cause"),
    [
        (["FAILED tests/test_parse.py::test_name - KeyError"], "failure", Cause.TEST),
        (["--- FAIL: TestParse (0.00s)"], "failure", Cause.TEST),
        (["test result: FAILED. 3 passed; 1 failed"], "failure", Cause.TEST),
        (["error[E0425]: cannot find value `x` in this scope"], "failure", Cause.BUILD),
        (["npm ERR! code ELIFECYCLE"], "failure", Cause.BUILD),
        (["src/app.ts(3,1): error TS2304: Cannot find name 'x'."], "failure", Cause.BUILD),
        (
            ["The job running on runner X has exceeded the maximum execution time of 360 min"],
            "failure",
            Cause.TIMEOUT,
        ),
        (["anything"], "timed_out", Cause.TIMEOUT),
        (["ERROR: Job failed (system failure): no space left on device"], "error", Cause.INFRA),
        (["fatal: unable to access: Could not resolve host: github.com"], "error", Cause.INFRA),
        (["make[1]: Leaving directory"], "failure", None),
    ],
)
def test_failures_are_classified(lines: list[str], result: str, cause: Cause | None) -> None:
    assert classify(lines, result) is cause


def test_the_line_that_says_why() -> None:
    excerpt = cut(FailureText(Source.LOG, GITHUB_LOG), "failure")
    assert excerpt is not None
    assert excerpt.cause is Cause.TEST
    assert excerpt.headline == "FAILED tests/test_parse.py::test_name - KeyError: 'name'"
    assert key_line("a\nb", None) == "b"
    assert key_line("ok\nerror: first\nerror: second\nmake: done", Cause.BUILD) == "error: first"
    assert key_line("", Cause.BUILD) == ""


def test_annotations_keep_failures_and_drop_githubs_exit_line() -> None:
    annotations = [
        {
            "path": ".github",
            "start_line": 1,
            "annotation_level": "failure",
            "message": "Process completed with exit code 1.",
            "title": "",
        },
        {
            "path": "tests/test_parse.py",
            "start_line": 12,
            "annotation_level": "failure",
            "message": "KeyError: 'name'",
            "title": "test_name",
        },
        {"path": "x.py", "start_line": 1, "annotation_level": "warning", "message": "unused"},
    ]
    assert annotations_text(annotations) == "tests/test_parse.py:12: test_name: KeyError: 'name'"
    assert annotations_text(annotations[:1]) == ""  # then the log is read instead


def test_an_excerpt_is_stored_and_read_back() -> None:
    excerpt = Excerpt("boom", Source.CI, Cause.BUILD, "https://ci.example/log/1")
    assert Excerpt.of(excerpt.stored()) == excerpt
    assert Excerpt.of(None) is None and Excerpt.of({"text": "", "cause": None}) is None
    assert Excerpt.of({"text": "x", "source": "ci", "cause": "not a cause"}) == Excerpt(
        "x", Source.CI
    )


HOSTILE = "\n".join(
    [
        "```",
        "@alice please look, cc @acme/core",
        "[click me](https://evil.example/phish) ![x](https://evil.example/i.png)",
        "<script>alert(1)</script> <details><summary>x</summary>",
        "#12 https://evil.example/autolink",
        "````` five backticks",
        "\u202eevil bidi",
    ]
)


def _outside_fences(body: str) -> str:
    """The body without its fenced code blocks: what GitHub renders as Markdown."""
    kept, fence = [], None
    for line in body.split("\n"):
        opened = re.match(r"^(`{3,})", line)
        if fence is None and opened:
            fence = opened[1]
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            kept.append(line)
    assert fence is None, "a code block was left open"
    return "\n".join(kept)


def test_a_hostile_excerpt_is_inert_in_a_code_block_no_content_can_close() -> None:
    block = markdown.block(HOSTILE)
    fence = block.split("\n", 1)[0].removesuffix("text")
    assert fence == "`" * 6  # longer than the five backticks inside
    assert block.endswith("\n" + fence)
    assert "\u202e" not in block
    assert _outside_fences(block) == ""  # everything inside the one block


def test_a_hostile_excerpt_is_text_in_the_issue_and_in_the_check_run() -> None:
    excerpt = cut(FailureText(Source.CI, HOSTILE, "javascript:alert(1)"), "failure")
    assert excerpt is not None
    issue = texts.render(
        "issue_still_failing.md",
        sha="a" * 40,
        upstream_private=False,
        run_url="https://ci.example/1",
        trace_url="https://conjunction.example/events/e1",
        excerpt=excerpt,
    )
    live = _outside_fences(issue)
    assert "@alice" not in live and "evil.example" not in live and "<script>" not in live
    assert "javascript" not in issue and "the whole log" not in issue  # no unsafe link
    assert "@alice please look" in issue  # shown, as text of the block
    row: dict[str, Any] = {
        "name": "github.com/acme/app",
        "via": None,
        "result_text": "❌ failed",
        "url": None,
        "duration": "",
        "owners": [],
        "compare_url": None,
        "excerpt": excerpt,
    }
    summary = texts.render(
        "summary.md",
        rows=[row],
        failures=[row],
        excerpts_shown=EXCERPTS_SHOWN,
        fallout=[],
        private=None,
        upstream_ranges=[],
        changed=[],
        progress=None,
    )
    live = _outside_fences(summary)
    assert "<details><summary>why it failed: what its CI reported</summary>" in live
    assert "@alice" not in live and "evil.example" not in live and "<script>" not in live
    assert live.count("<details>") == 1 and live.count("</details>") == 1


def test_a_report_shows_the_first_ten_excerpts_and_counts_the_rest() -> None:
    failing = [
        reports.Row(
            event=Event(
                id=f"e{number}",
                kind="trigger",
                project=f"github.com/acme/app{number}",
                result="failure",
                excerpt=Excerpt(f"FAILED test_{number}", Source.LOG, Cause.TEST).stored(),
            ),
            name=f"github.com/acme/app{number}",
            owners=[],
            required=True,
            compare_url=None,
        )
        for number in range(12)
    ]
    summary = reports.summary(failing)
    assert summary.count("<details>") == EXCERPTS_SHOWN == 10
    assert "FAILED test_9\n" in summary and "FAILED test_10" not in summary
    assert "…and 2 more: each on its event's page." in summary
    assert summary.count("`test failure`") == 12  # every row has its label
