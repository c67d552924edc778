"""The one rule by which a value reaches posted Markdown (`conjunction/markdown.py`), case by
case."""

from __future__ import annotations

import pytest

from conjunction import markdown
from tests.test_markdown_fuzz import read

ZWSP = "\u200b"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain words, snake_case and my-lib", "plain words, snake_case and my-lib"),
        ("[Click](https://evil.example/x)", f"\\[Click\\](https:{ZWSP}//evil.example/x)"),
        ("![](i.png)", "!\\[\\](i.png)"),
        ("**b** _e_ ~~s~~ $m$", "\\*\\*b\\*\\* \\_e\\_ \\~\\~s\\~\\~ \\$m\\$"),
        ("<b>&amp;</b>", "\\<b\\>\\&amp;\\</b\\>"),
        ("x\r\r# INJECTED", "x  \\# INJECTED"),
        ("a\u2028b\x85c\x0bd", "a b c d"),
        ("@alice and bob@example.com", f"\\@{ZWSP}alice and bob\\@{ZWSP}example.com"),
        ("see www.evil.example", f"see www{ZWSP}.evil.example"),
        ("fixes #12", f"fixes \\#{ZWSP}12"),
        ("fixes GH-12 and gh-3", f"fixes GH{ZWSP}-12 and gh{ZWSP}-3"),
        ("GHOST-1 high-5", "GHOST-1 high-5"),
        ("- item", "\\- item"),
        ("1. item", "1\\. item"),
        ("12) item", "12\\) item"),
        ("| cell |", "\\| cell \\|"),
        ("`code`", "\\`code\\`"),
        ("back\\slash", "back\\\\slash"),
        ("\u202eevil\x1b[0m", "evil\\[0m"),
        (None, ""),
    ],
)
def test_inline_leaves_nothing_live(value: object, shown: str) -> None:
    assert markdown.inline(value) == shown


def test_inline_cuts_long_values() -> None:
    assert markdown.inline("x" * 600) == "x" * 499 + "…"
    assert markdown.inline("x" * 60, 10) == "x" * 9 + "…"


def test_text_keeps_lines_each_inert() -> None:
    excerpt = "FAILED test_x\n\n    # not a heading\r\n[link](https://evil.example)\n"
    shown = markdown.text(excerpt)
    assert shown == (
        "FAILED test_x  \n\\# not a heading  \n\\[link\\](https:" + ZWSP + "//evil.example)"
    )
    seen = read(shown)
    assert (seen["links"], seen["headings"]) == ([], [])


def test_code_cannot_be_closed_by_its_content() -> None:
    assert markdown.code("abc1234") == "`abc1234`"
    assert markdown.code("a`b") == "``a`b``"
    assert markdown.code("`x`") == "`` `x` ``"
    assert markdown.code("a|b", table=True) == "`a\\|b`"
    assert markdown.code("") == "` `"


@pytest.mark.parametrize(
    "url",
    [
        "https://ci.example/9) [Security notice](https://evil.example/login)",
        "https://ci.example/a b",
        "https://ci.example/<x>",
        "https://ci.example/a|b",
        "https://ci.example/`x`",
        "https://ci.example/\\x",
        'https://ci.example/"x"',
        "https://ci.exämple/",
        "javascript:alert(1)",
        "https:///no-host",
        "//ci.example/x",
        " https://ci.example/",
        "ftp://ci.example/x",
        "https://ci.example/" + "x" * 2000,
    ],
)
def test_a_url_that_could_close_a_construct_is_text(url: str) -> None:
    assert markdown.safe_url(url) is None
    shown = markdown.link("run", url)
    assert shown.startswith("run (")
    assert read(shown)["links"] == []
    assert read(markdown.url(url))["links"] == []


def test_a_plain_http_url_is_a_link() -> None:
    url = "https://ci.example/runs/9?attempt=2#log"
    assert markdown.link("run [9]", url) == f"[run \\[9\\]]({url})"
    assert markdown.link("abc1234", url, as_code=True) == f"[`abc1234`]({url})"
    assert markdown.url(url) == f"<{url}>"
    assert markdown.link("run", None) == "run"


def test_a_sentence_keeps_its_code_and_nothing_else() -> None:
    sentence = "Most likely culprit: the 3 upstream commits `abc1234`…`def5678` of my_lib **now**."
    assert markdown.sentence(sentence) == (
        "Most likely culprit: the 3 upstream commits `abc1234`…`def5678` of my_lib \\*\\*now\\*\\*."
    )


@pytest.mark.parametrize(
    ("name", "syntax", "shown"),
    [
        ("alice", "github", "@alice"),
        ("acme/lib-team", "github", "@acme/lib-team"),
        ("john.doe", "github", "john.doe"),  # GitHub (Enterprise too) would mention `john`
        ("john.doe", "gitlab", "@john.doe"),
        ("group/sub", "gitlab", "@group/sub"),
        (
            "x](https://evil.example) @evil",
            "github",
            f"x\\](https:{ZWSP}//evil.example) \\@{ZWSP}evil",
        ),
    ],
)
def test_only_a_name_the_forge_reads_whole_is_mentioned(name: str, syntax: str, shown: str) -> None:
    assert markdown.mention(name, syntax) == shown


def test_fit_cuts_between_lines_and_says_what_was_left_out() -> None:
    body = "<!-- marker -->\n| a | b |\n|---|---|\n" + "".join(f"| {n} | x |\n" for n in range(99))
    assert markdown.fit(body, 10_000) == body
    cut = markdown.fit(body, 200, "https://conjunction.test/events/1")
    assert len(cut) <= 200
    assert cut.startswith("<!-- marker -->\n| a | b |\n|---|---|\n| 0 | x |\n")
    kept = cut.split("\n\n")[0].count("\n") + 1
    omitted = body.count("\n") + 1 - kept
    assert cut.endswith(
        f"\n\n… and {omitted} more lines: "
        "[the whole text on Conjunction](https://conjunction.test/events/1)\n"
    )
    assert all(cells == 2 for cells in read(cut)["rows"])
    assert markdown.fit("x" * 1000, 100).endswith("… and 1 more line\n")
    assert len(markdown.fit("@" * 1000, 100)) <= 100
