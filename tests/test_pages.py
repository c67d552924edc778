"""The pages as a browser gets them: security headers, links only to http(s), HTML error pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.tokens import create_project_token
from conjunction.web import templating
from conjunction.web.context import json_error
from conjunction.web.errors import json_errors
from conjunction.web.templating import is_http_url
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, SHA, TOOL, index, report_status, start_one, upstream_of
from tests.test_setup import local, logged_setup_link

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HOSTILE_URL = "javascript:alert(document.cookie)"
# A result as the pages say it, and the icon that goes with that word (macros.html, `icon`).
RESULT_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "error",
    "running": "running",
    "timed out": "timed_out",
    "cancelled": "cancelled",
    "skipped": "skipped",
    "no runs yet": "unknown",
}
# Emoji, which vanish without an emoji font: the symbols and dingbats (✅ ❌ ⚠ ✓), the emoji of
# the technical symbols (⏳ ⌛ ⏰), arrows and stars (⬆ ⭐ ⭕), the pictographs, and VS16.
EMOJI = re.compile(
    "[\u231a\u231b\u23e9-\u23fa\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]"
)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Page(HTMLParser):
    """What a browser would act on: link targets, inline scripts and styles, stylesheets."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.stylesheets: list[str] = []
        self.scripts: list[str] = []
        self.inline: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.links.append(values.get("href") or "")
        if tag == "link" and values.get("rel") == "stylesheet":
            self.stylesheets.append(values.get("href") or "")
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"] or "")
        elif (
            tag in {"script", "style"}
            or "style" in values
            or any(name.startswith("on") for name in values)
        ):
            self.inline.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@dataclass
class Element:
    """An element of a page, with its children, to ask what stands next to what."""

    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def own_text(self) -> str:
        """The text directly in this element, not in its children, whitespace collapsed."""
        return " ".join(
            " ".join(child for child in self.children if isinstance(child, str)).split()
        )

    def text(self) -> str:
        parts = [child if isinstance(child, str) else child.text() for child in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find(self, tag: str, cls: str | None = None) -> list[Element]:
        return [
            element
            for element in self.iter()
            if element.tag == tag and (cls is None or cls in element.classes)
        ]


class Tree(HTMLParser):
    """A page as a tree of elements (the templates close what they open)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if any(element.tag == tag for element in self.stack[1:]):
            while self.stack.pop().tag != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def icons(element: Element) -> list[Element]:
    """The result icons (inline SVG) directly in an element."""
    return [
        child
        for child in element.children
        if isinstance(child, Element) and child.tag == "svg" and "icon" in child.classes
    ]


def result_words(root: Element) -> list[tuple[str, Element]]:
    """Every result said as a word on the page (`failed`, `timed out`, …), with its element:
    the text of that element is the word and nothing else."""
    return [
        (element.own_text(), element)
        for element in root.iter()
        if element.tag not in {"title", "option", "script", "style"}
        and element.own_text() in RESULT_WORDS
    ]


def assert_accessible(html: str) -> list[str]:
    """The viewport meta tag, an icon of the same result beside every result word, and no emoji;
    returns the result words found."""
    root = Tree(html).root
    [head] = root.find("head")
    viewport = [meta for meta in head.find("meta") if meta.attrs.get("name") == "viewport"]
    assert len(viewport) == 1, "one viewport meta tag"
    assert viewport[0].attrs["content"] == "width=device-width, initial-scale=1"
    found = result_words(root)
    for word, element in found:
        beside = [icon.classes for icon in icons(element)]
        assert {"icon", f"st-{RESULT_WORDS[word]}"} in [
            classes & {"icon", f"st-{RESULT_WORDS[word]}"} for classes in beside
        ], f"{word!r} without its icon: {element.text()!r} has {beside}"
        for icon in icons(element):
            assert icon.attrs.get("aria-hidden") == "true", "the word says it; the icon is not read"
    assert not EMOJI.findall(html), f"emoji in the page: {sorted(set(EMOJI.findall(html)))}"
    return [word for word, _ in found]


def assert_secure_page(response: Any, html: str) -> Page:
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "script-src 'self';" in policy, "scripts only from the app's own files"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = Page(html)
    assert page.inline == [], "the policy would block inline script and style"
    assert page.stylesheets == ["/static/conjunction.css"]
    assert all(script.startswith("/static/") for script in page.scripts), page.scripts
    return page


async def test_every_page_carries_the_security_headers(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    for path in ["/", f"/events/{event_id}", "/events/nope", "/no-such-page"]:
        response = await client.get(path, headers=BROWSER)
        assert_secure_page(response, await response.text())
        assert "form-action 'self';" in response.headers["Content-Security-Policy"]


async def test_setup_pages_carry_the_security_headers(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="conjunction")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    client = await aiohttp_client(create_app(settings, env_path=tmp_path / ".env"))
    link = logged_setup_link(caplog)
    assert link
    for path in ["/", "/setup", local(link)]:
        response = await client.get(path, headers=BROWSER)
        assert_secure_page(response, await response.text())
        policy = response.headers["Content-Security-Policy"]
        assert "form-action 'self' https://github.com;" in policy, "the manifest goes to GitHub"


async def test_the_stylesheet_is_served(client: TestClient[Any, Any]) -> None:
    response = await client.get("/static/conjunction.css")
    assert response.status == 200
    assert response.content_type == "text/css"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "font" in await response.text()


async def test_the_icon_is_served_and_every_page_names_it(client: TestClient[Any, Any]) -> None:
    ico = await client.get("/favicon.ico")
    assert ico.status == 200
    assert ico.content_type == "image/vnd.microsoft.icon"
    assert (await ico.read())[:4] == b"\x00\x00\x01\x00", "an ICO file"
    svg = await client.get("/static/favicon.svg")
    assert (svg.status, svg.content_type) == (200, "image/svg+xml")
    home = await (await client.get("/", headers=BROWSER)).text()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in home


async def test_a_javascript_url_from_a_status_is_refused(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    answer = await report_status(client, event_id, "failure", url=HOSTILE_URL)
    assert (answer.status, await answer.json()) == (422, {"error": "url: not an http(s) URL"})
    origin = (await (await client.get(f"/api/v1/events/{event_id}")).json())["parent"]

    for path in [f"/events/{origin}", f"/events/{event_id}"]:
        response = await client.get(path, headers=BROWSER)
        page = assert_secure_page(response, await response.text())
        assert all(link.startswith(("/", "https://", "#")) for link in page.links), page.links
        assert HOSTILE_URL not in page.text, "nothing kept"


async def test_a_javascript_url_from_a_build_is_not_a_link(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await start_one(client, forge)
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, LIB)
    answer = await client.post(
        "/api/v1/builds",
        json={"project": LIB, "sha": SHA, "ref": "main", "result": "success", "url": HOSTILE_URL},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 202
    page = Page(await (await client.get(f"/events/{(await answer.json())['event_id']}")).text())
    assert not [link for link in page.links if "javascript" in link.lower()]
    assert HOSTILE_URL in page.text


async def test_a_pipeline_url_is_a_link(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    event_id = (await start_one(client, forge)).event_id
    await report_status(client, event_id, "success", url="https://ci.acme.dev/runs/1")
    page = Page(await (await client.get(f"/events/{event_id}")).text())
    assert "https://ci.acme.dev/runs/1" in page.links
    assert APP in page.text


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("https://ci.acme.dev/1", True),
        ("HTTP://ci.acme.dev/1", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("\x01javascript:alert(1)", False),
        (" https://ci.acme.dev/1", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox", False),
        ("//evil.example/x", False),
        ("/relative", False),
        ("https://", False),
        ("https:evil", False),
        ("", False),
        (None, False),
    ],
)
def test_only_http_urls_become_links(url: str | None, linked: bool) -> None:
    assert is_http_url(url) is linked


async def test_a_private_downstream_has_no_name_link_or_id(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    request = await start_one(client, forge)
    await index(client, APP, upstream_of(LIB), private=True)

    html = await (await client.get(f"/events/{request.parent_id}")).text()

    assert "a private project" in Page(html).text
    assert APP not in html
    assert request.event_id not in html


async def test_a_browser_gets_an_html_error_page(client: TestClient[Any, Any]) -> None:
    response = await client.get("/events/<b>nope", headers=BROWSER)
    assert response.status == 404
    html = await response.text()
    page = assert_secure_page(response, html)
    assert "404 Not Found" in page.text
    assert "no event <b>nope" in page.text
    assert "<b>nope" not in html, "escaped"


async def test_api_clients_keep_json_errors(client: TestClient[Any, Any]) -> None:
    page_for_api = await client.get("/events/nope", headers={"Accept": "application/json"})
    assert page_for_api.status == 404
    assert await page_for_api.json() == {"error": "no event nope"}

    api_for_browser = await client.get("/api/v1/events/nope", headers=BROWSER)
    assert api_for_browser.status == 404
    assert await api_for_browser.json() == {"error": "no event nope"}

    method = await client.post("/", headers=BROWSER)
    assert method.status == 405
    assert method.content_type == "text/html"
    assert method.headers["Allow"] == "GET,HEAD"


async def test_error_pages_keep_retry_after(aiohttp_client: Any) -> None:
    async def busy(request: web.Request) -> web.Response:
        return json_error(503, "the database is not answering", **{"Retry-After": "5"})

    app = web.Application(middlewares=[templating.html_error_pages, json_errors])
    templating.install(app)
    app.router.add_get("/busy", busy)
    client = await aiohttp_client(app)

    response = await client.get("/busy", headers=BROWSER)

    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert "the database is not answering" in Page(await response.text()).text


async def test_every_page_kind_says_results_by_word_and_icon_without_emoji(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """LIB with downstreams APP and TOOL: both pass, then TOOL fails, then both run."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    origins = []
    for run_id, tool_result in enumerate(["success", "failure", None], 1):
        sha = str(run_id) * 40
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
        await run_jobs(client)
        started = {
            project: request
            for project, request in forge.of("start_pipeline")
            if request.upstream_sha == sha
        }
        origins.append(started[APP].parent_id)
        if tool_result:
            await report_status(client, started[APP].event_id, "success")
            await report_status(client, started[TOOL].event_id, tool_result)
            await run_jobs(client)

    words = {}
    for kind, path, status in [
        ("home", "/", 200),
        ("project", f"/projects/{LIB}", 200),
        ("graph", "/graph", 200),
        ("failed event", f"/events/{origins[1]}", 200),
        ("running event", f"/events/{origins[2]}", 200),
        ("404", "/projects/github.com/acme/none", 404),
    ]:
        response = await client.get(path, headers=BROWSER)
        assert response.status == status, kind
        html = await response.text()
        assert_secure_page(response, html)
        try:
            words[kind] = assert_accessible(html)
        except AssertionError as error:
            raise AssertionError(f"the {kind} page, {path}: {error}") from error

    assert "failed" in words["home"], "the current breakage"
    assert {"passed", "failed", "running"} <= set(words["project"]), "the results matrix"
    assert {"failed", "running", "no runs yet"} <= set(words["graph"]), "the legend"
    assert {"passed", "failed"} <= set(words["failed event"]), "the tree"
    assert "running" in words["running event"]
    assert words["404"] == []


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ('<span class="result">failed</span>', "without its icon"),
        (
            '<span class="result"><svg class="icon st-passed" aria-hidden="true"></svg> failed'
            "</span>",
            "without its icon",
        ),
        ("<p>\u2705 passed</p>", "emoji"),
        ("<p>\u23f3 waiting</p>", "emoji"),
        ("<p>\u26a0\ufe0f warning</p>", "emoji"),
        ("<p>\U0001f534 red</p>", "emoji"),
    ],
)
def test_the_accessibility_check_finds_what_it_looks_for(html: str, problem: str) -> None:
    head = '<html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
    with pytest.raises(AssertionError, match=problem):
        assert_accessible(f"{head}</head><body>{html}</body></html>")
    with pytest.raises(AssertionError, match="viewport"):
        assert_accessible("<html><head></head><body></body></html>")
