"""The pages as a browser gets them: security headers, links only to http(s), HTML error pages."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from bot.tokens import create_project_token
from config.settings import Settings
from handlers import templating
from handlers.context import json_error
from handlers.errors import json_errors
from handlers.templating import is_http_url
from tests.conftest import runtime
from tests.memoryhost import MemoryHost
from tests.test_flow import APP, LIB, SHA, index, report_status, start_one, upstream_of
from tests.test_setup import local, logged_setup_link

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HOSTILE_URL = "javascript:alert(document.cookie)"


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


async def test_a_javascript_url_from_a_status_is_not_a_link(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    assert (await report_status(client, event_id, "failure", url=HOSTILE_URL)).status == 202
    origin = (await (await client.get(f"/api/v1/events/{event_id}")).json())["parent"]

    for path in [f"/events/{origin}", f"/events/{event_id}"]:
        response = await client.get(path, headers=BROWSER)
        page = assert_secure_page(response, await response.text())
        assert all(link.startswith(("/", "https://", "#")) for link in page.links), page.links
        assert HOSTILE_URL in page.text, "shown as text"


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
