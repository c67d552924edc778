"""GitHub App setup through GitHub's manifest flow, offered while no GitHub App is configured.

`/` shows a form that sends the manifest (`app.yml`, with this server's public URL filled in) to
GitHub. GitHub creates the app and redirects to `/setup/github/callback` with a one-hour code,
which is exchanged for the app's id, private key and webhook secret. Those are written to `.env`,
and the server loads them when it is restarted.
"""

from __future__ import annotations

import asyncio
import html
import io
import ipaddress
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import yaml
from aiohttp import web
from cachetools import TTLCache
from dotenv.parser import parse_stream

from config.settings import Settings
from handlers.context import json_error

log = logging.getLogger(__name__)

APP_YML = Path(__file__).resolve().parent.parent / "app.yml"
STATE_TTL = 3600  # seconds a setup form stays usable
GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem;
       line-height: 1.5; }
code { background: #f3f3f3; padding: 0 .2em; }
.warning { color: #9a3412; }
</style></head>
<body><h1>$title</h1>
$body
</body></html>
""")

SETUP_TITLE = "Set up Conjunction"
SETUP_BODY = Template("""<p>Conjunction is running, but no GitHub App is set up yet, so it cannot
hear from GitHub. Create the app in one step: GitHub shows you what the app asks for, creates it
with the permissions and events Conjunction needs, and sends you back here.</p>
$warning
<form method="post" action="$action">
<input type="hidden" name="manifest" value="$manifest">
<button type="submit">$button</button>
</form>
$more""")
LOCAL_WARNING = Template("""<p class="warning">The public URL is <code>$url</code>. GitHub
delivers webhooks there, so if GitHub cannot reach it, set <code>CONJUNCTION_PUBLIC_URL</code> to
an address it can reach (a tunnel will do) and restart before creating the app.</p>""")
ORG_FORM = """<h2>For an organization</h2>
<form method="get" action="/setup/github">
<label>Organization <input name="org" size="20" required></label>
<button type="submit">Continue</button>
</form>"""
PERSONAL_LINK = '<p><a href="/">Create it under your own account instead</a></p>'

CREATED_TITLE = "GitHub App created"
CREATED_BODY = Template("""<p>GitHub created the app <strong>$name</strong>. Its id, private key
and webhook secret are saved in <code>$env_path</code>.</p>
<ol>
<li><a href="$install_url">Install the app</a> on the repositories Conjunction should
connect.</li>
<li>Restart Conjunction so it loads the new credentials.</li>
</ol>""")

UNKNOWN_STATE = "this setup link is unknown or has expired; start again from /"
MISSING_CODE = "GitHub sent no code; start again from /"
GITHUB_UNREACHABLE = "could not reach GitHub at {url}; start again from /"
GITHUB_REFUSED = "GitHub did not create the app ({reason}); start again from /"
GITHUB_INCOMPLETE = "GitHub's answer lacks the app's id, private key or webhook secret"
ENV_UNWRITABLE = (
    "GitHub created the app ({url}), but {path} could not be written ({reason}). Fix that, then "
    "generate a private key and set a webhook secret on the app's settings page and put them in "
    "{path} by hand."
)
ALREADY_SET_UP = "GitHub is already set up"
BAD_ORG = "{org!r} is not a GitHub organization name"


def manifest(settings: Settings, path: Path = APP_YML) -> dict[str, Any]:
    """The app manifest from `app.yml`, pointing at this server's public URL."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    public = settings.public_url.rstrip("/")
    data["url"] = public
    data["hook_attributes"] = {
        **data.get("hook_attributes", {}),
        "url": f"{public}/webhooks/github",
    }
    data["redirect_url"] = f"{public}/setup/github/callback"
    return data


def _maybe_unreachable(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


def _env_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_env(path: Path, values: Mapping[str, str]) -> None:
    """Set `values` in the dotenv file at `path`, keeping its other entries; mode 0600."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    text = "".join(
        binding.original.string
        for binding in parse_stream(io.StringIO(old))
        if binding.key not in values
    )
    if text and not text.endswith("\n"):
        text += "\n"
    text += "".join(f"{key}={_env_value(value)}\n" for key, value in values.items())
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)
    os.replace(temporary, path)


def _html(title: str, body: str) -> web.Response:
    return web.Response(
        text=PAGE.substitute(title=html.escape(title), body=body),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


class GitHubSetup:
    """The manifest flow's pages. Each form carries a one-use state that the callback checks."""

    def __init__(
        self,
        settings: Settings,
        env_path: Path,
        session_getter: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.settings = settings
        self.env_path = env_path
        self.session_getter = session_getter
        self.manifest = manifest(settings)
        self.states: TTLCache[str, bool] = TTLCache(maxsize=1024, ttl=STATE_TTL)

    async def index(self, request: web.Request) -> web.Response:
        """`GET /`: the setup page, for a personal account."""
        return self._setup_page(None)

    async def for_org(self, request: web.Request) -> web.Response:
        """`GET /setup/github?org=NAME`: the setup page, for an organization."""
        org = request.query.get("org", "").strip()
        if org and not GITHUB_LOGIN.match(org):
            return json_error(400, BAD_ORG.format(org=org))
        return self._setup_page(org or None)

    def _setup_page(self, org: str | None) -> web.Response:
        if self.settings.github_enabled:
            return json_error(404, ALREADY_SET_UP)
        state = secrets.token_urlsafe(24)
        self.states[state] = True
        owner = f"/organizations/{org}" if org else ""
        query = urlencode({"state": state})
        action = f"{self.settings.github_web_url}{owner}/settings/apps/new?{query}"
        public = self.settings.public_url
        warning = _maybe_unreachable(public) and LOCAL_WARNING.substitute(url=html.escape(public))
        button = f"Create the GitHub App for {org}" if org else "Create the GitHub App"
        body = SETUP_BODY.substitute(
            warning=warning or "",
            action=html.escape(action),
            manifest=html.escape(json.dumps(self.manifest)),
            button=html.escape(button),
            more=PERSONAL_LINK if org else ORG_FORM,
        )
        return _html(SETUP_TITLE, body)

    async def callback(self, request: web.Request) -> web.Response:
        """`GET /setup/github/callback`: turn GitHub's code into credentials saved in `.env`."""
        if self.states.pop(request.query.get("state", ""), None) is None:
            return json_error(400, UNKNOWN_STATE)
        code = request.query.get("code", "")
        if not code:
            return json_error(400, MISSING_CODE)
        api = self.settings.github_api_url
        url = f"{api}/app-manifests/{quote(code, safe='')}/conversions"
        try:
            async with self.session_getter().post(
                url, headers=GITHUB_HEADERS, timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not reach GitHub to create the app: %s", type(exc).__name__)
            return json_error(502, GITHUB_UNREACHABLE.format(url=api))
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not 200 <= status < 300:
            message = answer.get("message") if isinstance(answer, dict) else None
            log.warning("GitHub refused the app manifest code: HTTP %s %s", status, message)
            reason = f"HTTP {status}: {message}" if message else f"HTTP {status}"
            return json_error(502, GITHUB_REFUSED.format(reason=reason))
        if not isinstance(answer, dict) or not all(
            answer.get(key) for key in ("id", "pem", "webhook_secret", "html_url")
        ):
            return json_error(502, GITHUB_INCOMPLETE)
        credentials = {
            "GITHUB_APP_ID": str(answer["id"]),
            "GITHUB_PRIVATE_KEY": answer["pem"],
            "GITHUB_WEBHOOK_SECRET": answer["webhook_secret"],
        }
        html_url = str(answer["html_url"]).rstrip("/")
        try:
            await asyncio.to_thread(write_env, self.env_path, credentials)
        except OSError as exc:
            log.error("could not write %s: %s", self.env_path, exc.strerror)
            return json_error(
                500, ENV_UNWRITABLE.format(url=html_url, path=self.env_path, reason=exc.strerror)
            )
        name = str(answer.get("name") or answer.get("slug") or "Conjunction")
        log.info(
            "created GitHub App %s (id %s); credentials in %s", name, answer["id"], self.env_path
        )
        body = CREATED_BODY.substitute(
            name=html.escape(name),
            env_path=html.escape(str(self.env_path)),
            install_url=html.escape(f"{html_url}/installations/new"),
        )
        return _html(CREATED_TITLE, body)


def setup_routes(
    settings: Settings,
    env_path: Path,
    session_getter: Callable[[], aiohttp.ClientSession],
) -> list[web.RouteDef]:
    """`GET /`, `GET /setup/github` and `GET /setup/github/callback`; add them only while GitHub
    is not configured."""
    flow = GitHubSetup(settings, env_path, session_getter)
    return [
        web.get("/", flow.index),
        web.get("/setup/github", flow.for_org),
        web.get("/setup/github/callback", flow.callback),
    ]
