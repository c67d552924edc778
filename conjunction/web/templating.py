"""What every HTML page shares: the Jinja templates, security headers, and error pages.

Pages are rendered from `conjunction/web/templates/` with autoescaping, on one base layout, styled
by `conjunction/web/static/conjunction.css` and enhanced by script files from
`conjunction/web/static/` only (the Content-Security-Policy allows no inline script or style). Every
error under `/` that a browser asked for (`Accept: text/html`) is shown as an HTML page on the same
layout; API clients keep the JSON `{"error": ...}` of `conjunction.web.errors`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup, escape

from conjunction.durations import time_left
from conjunction.excerpts import Excerpt
from conjunction.tally import shown_as

PageContext = Callable[[web.Request], dict[str, Any]]
PAGE_CONTEXT: web.AppKey[PageContext] = web.AppKey("page_context")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
# Paths that machines call; everything else under `/` is a page for people.
MACHINE_PATHS = ("/api/", "/webhooks/", "/badges/", "/schema/", "/static/", "/healthz", "/metrics")
SAFE_LINK_PREFIXES = ("http://", "https://")
FORWARDED_ERROR_HEADERS = ("Allow", "Retry-After")


def is_http_url(value: object) -> bool:
    """Only http(s) URLs become links; anything else (`javascript:`, `data:`) stays text. The
    raw text must start with the scheme: browsers drop leading blanks and inner tabs that
    `urlsplit` would hide."""
    return (
        isinstance(value, str)
        and value.lower().startswith(SAFE_LINK_PREFIXES)
        and bool(urlsplit(value).netloc)
    )


# How each result reads on a page: an icon's name and a word (a running one has no result yet).
STATES: dict[str | None, tuple[str, str]] = {
    "success": ("passed", "passed"),
    "failure": ("failed", "failed"),
    "error": ("error", "error"),
    "cancelled": ("cancelled", "cancelled"),
    "timed_out": ("timed_out", "timed out"),
    "skipped": ("skipped", "skipped"),
    None: ("running", "running"),
}


def state(result: str | None) -> str:
    return STATES.get(result, ("unknown", ""))[0]


def state_text(result: str | None) -> str:
    return STATES.get(result, ("", str(result)))[1]


def duration(seconds: float) -> str:
    """`12s`, `4m 05s`, `1h 02m`."""
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def clock(moment: datetime | None) -> str:
    """A time of day in UTC; the date too when it is not today."""
    if moment is None:
        return ""
    moment = moment.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def inline_code(text: str) -> Markup:
    """A sentence written for Markdown (the culprit's), with its `code` spans as <code>."""
    return Markup(
        re.sub(r"`([^`]*)`", lambda found: f"<code>{found.group(1)}</code>", str(escape(text)))
    )


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """Scripts and styles only from our own files, data only from us, forms only to us (and the
    forge a setup page posts to), never framed."""
    forms = " ".join(["'self'", *form_targets])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self'; form-action {forms}; base-uri 'none'; frame-ancestors 'none'"
    )


def install(
    app: web.Application,
    *,
    form_targets: Iterable[str] = (),
    templates: Iterable[Path] = (),
    page_context: PageContext | None = None,
) -> None:
    """Set up the templates, `/static` and the security headers; `html_error_pages` goes first
    in the app's middlewares. `page_context` gives what every page's layout needs; `templates`,
    more folders of templates (a forge's setup pages), found after the service's own."""
    if page_context is not None:
        app[PAGE_CONTEXT] = page_context
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader([TEMPLATES, *templates]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.tests["http_url"] = is_http_url
    env.filters["state"] = state
    env.filters["state_text"] = state_text
    env.filters["duration"] = duration
    env.filters["clock"] = clock
    env.filters["time_left"] = time_left
    env.filters["inline_code"] = inline_code
    env.filters["excerpt"] = Excerpt.of
    env.filters["shown_as"] = shown_as
    app.router.add_static("/static", STATIC)
    app.router.add_get("/favicon.ico", favicon)
    headers = {
        "Content-Security-Policy": content_security_policy(form_targets),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }

    async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.content_type == "text/html":
            response.headers.update(headers)

    app.on_response_prepare.append(security_headers)


async def favicon(request: web.Request) -> web.FileResponse:
    """`/favicon.ico`, where browsers and feed readers look for it without asking the page."""
    return web.FileResponse(
        STATIC / "favicon.ico",
        headers={"Content-Type": "image/vnd.microsoft.icon", "Cache-Control": "max-age=86400"},
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    page_context = request.app.get(PAGE_CONTEXT)
    if page_context is not None:
        context = {**page_context(request), **context}
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def wants_html(request: web.Request) -> bool:
    """A browser asking for a page (not an API, webhook or file path)."""
    return "text/html" in request.headers.get("Accept", "") and not request.path.startswith(
        MACHINE_PATHS
    )


@web.middleware
async def html_error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: a JSON error answer becomes an HTML page for a browser."""
    response = await handler(request)
    if response.status < 400 or response.content_type != "application/json":
        return response
    body = response.body if isinstance(response, web.Response) else None
    if not wants_html(request) or not isinstance(body, bytes):
        return response
    try:
        message = json.loads(body)["error"]
    except (TypeError, ValueError, KeyError):
        return response
    page = render(
        request,
        "error.html",
        status=response.status,
        title=_status_line(response.status),
        message=str(message),
    )
    for name in FORWARDED_ERROR_HEADERS:
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
