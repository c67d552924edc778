"""GitHub App setup through GitHub's manifest flow, offered while no forge is configured
(`setup`, which GitHub's `SERVER` names).

The server prints a setup URL with a one-time code in its log at start
(`conjunction.web.setup_code`);
only a browser that opened it may go on. `/setup` then shows a form that sends the manifest
(`app.yml` beside this module, with this server's public URL filled in) to GitHub. GitHub creates
the app and redirects to `/setup/github/callback` with a one-hour code, which is exchanged for the
app's id, private key and webhook secret. Those are written to `.env` once; the server loads them
when it is restarted, and until then the setup refuses to run again.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import gidgethub
import yaml
from aiohttp import web
from dotenv.parser import parse_stream

from conjunction.config.settings import Settings
from conjunction.forges import github
from conjunction.forges.driver import Setup
from conjunction.forges.github.client import TRANSIENT_ERRORS, aiohttp_connect, convert_manifest
from conjunction.forges.github.settings import GitHubSettings
from conjunction.queue import RetryLater
from conjunction.web.context import json_error
from conjunction.web.setup_code import SetupCode
from conjunction.web.templating import render

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
APP_YML = HERE / "app.yml"  # installed with the package
TEMPLATES = HERE / "templates"  # setup/*.html
COOKIE = "conjunction_setup"
COOKIE_PATH = "/setup"
GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
NO_STORE = {"Cache-Control": "no-store"}

NEEDS_CODE = (
    "setting up needs the one-time setup code: open the setup link that the server printed in "
    "its log when it started (it ends in /setup?code=…)"
)
WRONG_CODE = (
    "this setup code is not the current one: open the setup link that the server printed in its "
    "log when it last started"
)
SETUP_DONE = "the GitHub App is created and saved; restart Conjunction to load it"
UNKNOWN_STATE = (
    "this setup form is unknown, expired or from another browser; start again from /setup"
)
MISSING_CODE = "GitHub sent no code; start again from /setup"
GITHUB_UNREACHABLE = "could not reach GitHub at {url}; start again from /setup"
GITHUB_REFUSED = "GitHub did not create the app ({reason}); start again from /setup"
GITHUB_INCOMPLETE = "GitHub's answer lacks the app's id, private key or webhook secret"
ENV_UNWRITABLE = (
    "GitHub created the app ({url}), but {path} could not be written ({reason}). Fix that, then "
    "generate a private key and set a webhook secret on the app's settings page and put them in "
    "{path} by hand."
)
BAD_ORG = "{org!r} is not a GitHub organization name"


class SetupFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def manifest(settings: Settings, path: Path = APP_YML) -> dict[str, Any]:
    """The app manifest from `app.yml`, pointing at this server's public URL."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    public = settings.public_url.rstrip("/")
    data["url"] = public
    data["hook_attributes"] = {
        **data.get("hook_attributes", {}),
        "url": f"{public}{github.DRIVER.webhook_path}",
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
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def convert_manifest_code(
    session: aiohttp.ClientSession, api_url: str, code: str
) -> dict[str, Any]:
    """GitHub's answer to `POST /app-manifests/{code}/conversions`: the new app's id, key and
    secret. Raises SetupFailed with a message for the person setting up."""
    try:
        answer = await convert_manifest(aiohttp_connect(session, api_url=api_url)(), code)
    except TRANSIENT_ERRORS as exc:
        log.warning("could not reach GitHub to create the app: %s", type(exc).__name__)
        raise SetupFailed(502, GITHUB_UNREACHABLE.format(url=api_url)) from None
    except (gidgethub.HTTPException, RetryLater) as exc:
        status = getattr(exc, "status_code", None)
        log.warning("GitHub refused the app manifest code: HTTP %s %s", status, exc)
        reason = f"HTTP {int(status)}: {exc}" if status is not None else str(exc)
        raise SetupFailed(502, GITHUB_REFUSED.format(reason=reason)) from None
    if not isinstance(answer, dict) or not all(
        answer.get(key) for key in ("id", "pem", "webhook_secret", "html_url")
    ):
        raise SetupFailed(502, GITHUB_INCOMPLETE)
    return answer


class GitHubSetup:
    """The setup pages. Each acts only for the browser that opened the setup URL; once the
    credentials are saved, none acts again."""

    def __init__(
        self,
        settings: Settings,
        env_path: Path,
        session_getter: Callable[[], aiohttp.ClientSession],
        setup_code: SetupCode,
    ) -> None:
        self.settings = settings
        self.env_path = env_path
        self.session_getter = session_getter
        self.setup_code = setup_code
        self.manifest = manifest(settings)
        self.completed = False
        self._completing = asyncio.Lock()

    @property
    def url(self) -> str:
        """The URL to open to set up, as printed in the log at start."""
        query = urlencode({"code": self.setup_code.code})
        return f"{self.settings.public_url.rstrip('/')}{COOKIE_PATH}?{query}"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/setup", self.start),
            web.get("/setup/github", self.for_org),
            web.get("/setup/github/callback", self.callback),
        ]

    async def index(self, request: web.Request) -> web.Response:
        """`GET /`: where to find the setup link, and nothing more."""
        return render(request, "setup/index.html", title="Conjunction", completed=self.completed)

    def _browser(self, request: web.Request) -> str | None:
        return self.setup_code.browser(request.cookies.get(COOKIE))

    def _admit(self, request: web.Request) -> str | web.Response:
        """The id of the browser that opened the setup link, or the answer for anyone else."""
        if self.completed:
            return json_error(410, SETUP_DONE)
        return self._browser(request) or json_error(403, NEEDS_CODE)

    async def start(self, request: web.Request) -> web.Response:
        """`GET /setup?code=CODE` lets this browser in; `GET /setup` is the setup page."""
        if "code" not in request.query:
            browser = self._admit(request)
            if isinstance(browser, web.Response):
                return browser
            return self._setup_page(request, browser, None)
        if self.completed:
            return json_error(410, SETUP_DONE)
        if not self.setup_code.matches(request.query["code"]):
            return json_error(403, WRONG_CODE)
        response = web.Response(status=303, headers={"Location": COOKIE_PATH, **NO_STORE})
        if self._browser(request) is None:
            response.set_cookie(
                COOKIE,
                self.setup_code.new_cookie(),
                path=COOKIE_PATH,
                httponly=True,
                samesite="Lax",
                secure=self.settings.public_url.startswith("https://"),
            )
        return response

    async def for_org(self, request: web.Request) -> web.Response:
        """`GET /setup/github?org=NAME`: the setup page, for an organization."""
        browser = self._admit(request)
        if isinstance(browser, web.Response):
            return browser
        org = request.query.get("org", "").strip()
        if org and not GITHUB_LOGIN.match(org):
            return json_error(400, BAD_ORG.format(org=org))
        return self._setup_page(request, browser, org or None)

    def _setup_page(self, request: web.Request, browser: str, org: str | None) -> web.Response:
        owner = f"/organizations/{org}" if org else ""
        query = urlencode({"state": self.setup_code.new_state(browser)})
        response = render(
            request,
            "setup/create.html",
            title="Set up Conjunction",
            org=org,
            action=f"{self.settings.forge(GitHubSettings).web_url}{owner}/settings/apps/new?{query}",
            manifest=json.dumps(self.manifest),
            public_url=self.settings.public_url,
            maybe_unreachable=_maybe_unreachable(self.settings.public_url),
        )
        response.headers.update(NO_STORE)
        return response

    async def callback(self, request: web.Request) -> web.Response:
        """`GET /setup/github/callback`: turn GitHub's code into credentials saved in `.env`."""
        async with self._completing:
            browser = self._admit(request)
            if isinstance(browser, web.Response):
                return browser
            if not self.setup_code.use_state(browser, request.query.get("state", "")):
                return json_error(400, UNKNOWN_STATE)
            code = request.query.get("code", "")
            if not code:
                return json_error(400, MISSING_CODE)
            try:
                answer = await convert_manifest_code(
                    self.session_getter(), self.settings.forge(GitHubSettings).api_url, code
                )
            except SetupFailed as failure:
                return json_error(failure.status, failure.message)
            html_url = str(answer["html_url"]).rstrip("/")
            try:
                await asyncio.to_thread(write_env, self.env_path, _credentials(answer))
            except OSError as exc:
                log.error("could not write %s: %s", self.env_path, exc.strerror)
                return json_error(
                    500,
                    ENV_UNWRITABLE.format(url=html_url, path=self.env_path, reason=exc.strerror),
                )
            self.completed = True
        name = str(answer.get("name") or answer.get("slug") or "Conjunction")
        log.info(
            "created GitHub App %s (id %s); credentials in %s", name, answer["id"], self.env_path
        )
        response = render(
            request,
            "setup/created.html",
            title="GitHub App created",
            name=name,
            env_path=str(self.env_path),
            install_url=f"{html_url}/installations/new",
        )
        response.headers.update(NO_STORE)
        return response


def setup(
    settings: Settings, env_path: Path, session_getter: Callable[[], aiohttp.ClientSession]
) -> Setup:
    """The setup pages, their templates, GitHub as their form's target, and the setup link."""
    pages = GitHubSetup(settings, env_path, session_getter, SetupCode())
    return Setup(
        routes=pages.routes(),
        templates=TEMPLATES,
        form_targets=[settings.forge(GitHubSettings).web_url],
        announcement=(
            f"to create the GitHub App, open {pages.url} (this link works until the app is "
            "created or the server restarts)"
        ),
    )


def _credentials(answer: Mapping[str, Any]) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": str(answer["id"]),
        "GITHUB_PRIVATE_KEY": answer["pem"],
        "GITHUB_WEBHOOK_SECRET": answer["webhook_secret"],
    }
