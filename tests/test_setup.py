"""The GitHub App setup as its visitors meet it: the holder of the logged setup link, and everyone
else (other browsers, wrong codes, forged states, requests through a reverse proxy)."""

import asyncio
import json
import os
import re
import stat
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web

from conjunction.app import create_app
from conjunction.config.settings import Settings, load_settings
from conjunction.forges.github.settings import GitHubSettings
from conjunction.forges.github.setup import APP_YML
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.web.setup_code import STATE_TTL, SetupCode
from testkit.keys import PRIVATE_KEY_PEM as PEM
from testkit.settings import with_forge

PUBLIC = "http://conjunction.example.com"  # the test client sends no Secure cookie
PERMISSIONS = {
    "actions": "write",
    "contents": "write",
    "checks": "write",
    "statuses": "write",
    "issues": "write",
    "pull_requests": "read",
    "metadata": "read",
}
EVENTS = ["check_suite", "issue_comment", "pull_request", "push", "status", "workflow_run"]
SETUP_LINK = re.compile(r"open (\S+/setup\?code=\S+)")
SETUP_ROUTES = ["/setup", "/setup/github?org=acme", "/setup/github/callback?code=C&state=S"]


class Forms(HTMLParser):
    """Every form on a page: its method, action and named inputs."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.links: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"method": attrs.get("method"), "action": attrs["action"]})
            self.forms[-1]["inputs"] = {}
        elif tag == "input" and attrs.get("name"):
            self.forms[-1]["inputs"][attrs["name"]] = attrs.get("value")
        elif tag == "a":
            self.links.append(attrs["href"])


def manifest_form(page: str) -> dict:
    return next(form for form in Forms(page).forms if "manifest" in form["inputs"])


@pytest.fixture
def env_path(tmp_path):
    (tmp_path / "config").mkdir()
    return tmp_path / "config" / ".env"


@pytest.fixture
def github_answer():
    """What the fake GitHub answers to the conversion: (status, body); calls are recorded."""
    return {
        "status": 201,
        "body": {
            "id": 12345,
            "slug": "conjunction-acme",
            "name": "Conjunction (acme)",
            "pem": PEM,
            "webhook_secret": "s3cret-hook",
            "html_url": "https://github.com/apps/conjunction-acme",
            "client_secret": "never-stored",
        },
        "calls": [],
    }


@pytest.fixture
async def conversions_api(aiohttp_server, github_answer):
    """GitHub's app-manifest conversion endpoint, on loopback; returns its API URL."""

    async def conversions(request: web.Request) -> web.Response:
        github_answer["calls"].append((request.method, request.path))
        return web.json_response(github_answer["body"], status=github_answer["status"])

    app = web.Application()
    app.router.add_post("/app-manifests/{code}/conversions", conversions)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def start(aiohttp_client, tmp_path, env_path, conversions_api, caplog):
    """Start the server with these settings; returns the client and the setup link it logged."""

    async def start_server(public_url=PUBLIC, github_api_url=None, forge=None):
        caplog.set_level("WARNING", logger="conjunction")
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'c.db'}",
            public_url=public_url,
            forges=(GitHubSettings(api_url=github_api_url or conversions_api),),
        )
        app = create_app(
            settings if forge is None else with_forge(settings, forge),
            env_path=env_path,
            run_workers=False,
        )
        client = await aiohttp_client(app)
        return client, logged_setup_link(caplog)

    return start_server


def logged_setup_link(caplog: pytest.LogCaptureFixture) -> str | None:
    """The setup link of the server started last, as its log shows it."""
    links = [SETUP_LINK.search(record.getMessage()) for record in caplog.records]
    urls = [link[1] for link in links if link]
    return urls[-1] if urls else None


def local(url: str) -> str:
    """The path and query of a logged URL, to open it on the test server."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def open_setup(start, **settings):
    """A browser that opened the logged setup link."""
    client, url = await start(**settings)
    assert (await client.get(local(url))).status == 200
    return client


@pytest.fixture
async def browser(start):
    """A browser that opened the logged setup link, on a server whose GitHub is the fake."""
    return await open_setup(start)


async def state_of(client, path: str = "/setup") -> str:
    action = manifest_form(await (await client.get(path)).text())["action"]
    return parse_qs(urlsplit(action).query)["state"][0]


async def finish(client, state: str, code: str = "CODE"):
    return await client.get("/setup/github/callback", params={"code": code, "state": state})


async def test_the_setup_link_is_logged_at_start_on_the_public_url(start):
    _, url = await start()
    assert url.startswith(f"{PUBLIC}/setup?code=")
    assert len(parse_qs(urlsplit(url).query)["code"][0]) >= 40


async def test_the_setup_link_sets_a_guarded_cookie_and_leads_to_the_form(start):
    client, url = await start()
    answer = await client.get(local(url), allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == "/setup"
    cookie = answer.cookies["conjunction_setup"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/setup"
    assert parse_qs(urlsplit(url).query)["code"][0] not in cookie.value

    page = await client.get("/setup")
    assert page.status == 200
    assert manifest_form(await page.text())


async def test_on_an_https_public_url_the_cookie_is_secure(start):
    client, url = await start(public_url="https://conjunction.example.com")
    answer = await client.get(local(url), allow_redirects=False)
    assert answer.cookies["conjunction_setup"]["secure"] is True


async def test_setup_page_posts_the_manifest_to_github(start):
    browser = await open_setup(start, github_api_url="https://api.github.com")
    response = await browser.get("/setup")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    form = manifest_form(await response.text())

    action = urlsplit(form["action"])
    assert form["method"] == "post"
    assert (action.scheme, action.netloc, action.path) == (
        "https",
        "github.com",
        "/settings/apps/new",
    )
    assert parse_qs(action.query)["state"][0]
    sent = json.loads(form["inputs"]["manifest"])
    assert sent["name"] == "Conjunction"
    assert sent["url"] == PUBLIC
    assert sent["hook_attributes"] == {"url": f"{PUBLIC}/webhooks/github", "active": True}
    assert sent["redirect_url"] == f"{PUBLIC}/setup/github/callback"
    assert sent["public"] is True
    assert sent["default_permissions"] == PERMISSIONS
    assert sent["default_events"] == EVENTS


async def test_each_page_has_its_own_state(browser):
    assert await state_of(browser) != await state_of(browser)


def test_app_yml_asks_for_exactly_the_documented_permissions():
    data = yaml.safe_load(APP_YML.read_text())
    assert data["default_permissions"] == PERMISSIONS
    assert data["default_events"] == EVENTS
    assert not [event for event in data["default_events"] if event.startswith("installation")]


async def test_organization_form_targets_the_organization(start):
    browser = await open_setup(start, github_api_url="https://api.github.com")
    page = await (await browser.get("/setup")).text()
    org_form = next(form for form in Forms(page).forms if "org" in form["inputs"])
    assert (org_form["method"], org_form["action"]) == ("get", "/setup/github")

    response = await browser.get("/setup/github", params={"org": "acme"})
    assert response.status == 200
    page = await response.text()
    action = urlsplit(manifest_form(page)["action"])
    assert action.netloc == "github.com"
    assert action.path == "/organizations/acme/settings/apps/new"
    assert "/setup" in Forms(page).links, "a way back to the personal account"


async def test_a_bad_organization_name_is_refused(browser):
    response = await browser.get("/setup/github", params={"org": "acme/../x"})
    assert response.status == 400
    assert "organization" in (await response.json())["error"]


async def test_enterprise_server_forms_go_to_its_own_host(start):
    browser = await open_setup(start, github_api_url="https://ghe.acme.dev/api/v3")
    action = urlsplit(manifest_form(await (await browser.get("/setup")).text())["action"])
    assert (action.scheme, action.netloc, action.path) == (
        "https",
        "ghe.acme.dev",
        "/settings/apps/new",
    )


async def test_callback_saves_the_credentials(browser, github_answer, env_path, monkeypatch):
    env_path.write_text('PORT=4000\nGITHUB_APP_ID=1\nCONJUNCTION_ADMIN_TOKEN="keep me"\n')
    env_path.chmod(0o644)

    response = await finish(browser, await state_of(browser))

    assert response.status == 200, await response.text()
    assert github_answer["calls"] == [("POST", "/app-manifests/CODE/conversions")]
    page = await response.text()
    assert "https://github.com/apps/conjunction-acme/installations/new" in Forms(page).links
    assert "restart" in page.lower()

    text = env_path.read_text()
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    assert "PORT=4000\n" in text
    assert 'CONJUNCTION_ADMIN_TOKEN="keep me"\n' in text
    assert "GITHUB_APP_ID=1\n" not in text
    assert 'GITHUB_APP_ID="12345"\n' in text
    assert 'GITHUB_WEBHOOK_SECRET="s3cret-hook"\n' in text
    assert "GITHUB_PRIVATE_KEY=" in text
    assert "never-stored" not in text
    assert os.listdir(env_path.parent) == [".env"], "no temporary file left"

    for key in list(os.environ):
        if key.startswith(("GITHUB_", "CONJUNCTION_", "GITLAB_")) or key == "PORT":
            monkeypatch.delenv(key)
    loaded = load_settings(env_path)
    github = loaded.forge(GitHubSettings)
    assert github.enabled
    assert github.app_id == "12345"
    assert github.private_key == PEM
    assert github.webhook_secret == "s3cret-hook"
    assert loaded.port == 4000
    assert loaded.admin_token == "keep me"


async def test_github_error_is_a_502(browser, github_answer, env_path):
    github_answer.update(status=404, body={"message": "Not Found"})

    response = await finish(browser, await state_of(browser), code="OLD")

    assert response.status == 502
    error = (await response.json())["error"]
    assert "GitHub did not create the app" in error
    assert "Not Found" in error
    assert not env_path.exists()


async def test_without_the_code_the_front_page_only_says_where_to_find_it(start):
    client, url = await start()
    page = await client.get("/")
    text = await page.text()
    assert page.status == 200
    assert "log" in text
    assert "/setup?code=" in text
    assert parse_qs(urlsplit(url).query)["code"][0] not in text
    assert Forms(text).forms == []
    assert Forms(text).links == []


async def test_without_the_code_no_setup_route_acts(start, github_answer, env_path):
    client, _ = await start()
    for path in SETUP_ROUTES:
        response = await client.get(path)
        assert response.status == 403, path
        assert "printed in its log" in (await response.json())["error"]
        assert not response.cookies
    assert github_answer["calls"] == []
    assert not env_path.exists()


@pytest.mark.parametrize(
    "proxy_headers",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1;proto=https", "X-Forwarded-Proto": "https"},
    ],
)
async def test_a_request_through_a_local_reverse_proxy_needs_the_code_too(
    start, proxy_headers, github_answer, env_path
):
    client, _ = await start()
    for path in SETUP_ROUTES:
        response = await client.get(path, headers=proxy_headers)
        assert response.status == 403, path
    assert github_answer["calls"] == []
    assert not env_path.exists()


async def test_a_wrong_code_is_refused(start, env_path):
    client, url = await start()
    code = parse_qs(urlsplit(url).query)["code"][0]
    for wrong in ["wrong", code[:-1], code + "x", code.upper(), ""]:
        response = await client.get("/setup", params={"code": wrong}, allow_redirects=False)
        assert response.status == 403, wrong
        assert "not the current one" in (await response.json())["error"]
        assert not response.cookies
    assert (await client.get("/setup")).status == 403


async def test_the_code_from_an_earlier_start_is_refused(start):
    _, earlier = await start()
    client, current = await start()
    assert earlier != current
    response = await client.get(local(earlier), allow_redirects=False)
    assert response.status == 403


async def test_another_browser_cannot_finish_the_setup(browser, github_answer, env_path):
    state = await state_of(browser)
    callback = browser.make_url("/setup/github/callback")
    async with aiohttp.ClientSession() as other:
        without_cookie = await other.get(callback, params={"code": "CODE", "state": state})
        assert without_cookie.status == 403

        forged_cookie = await other.get(
            callback,
            params={"code": "CODE", "state": state},
            headers={"Cookie": "conjunction_setup=attacker.0000"},
        )
        assert forged_cookie.status == 403
    assert github_answer["calls"] == []
    assert not env_path.exists()

    assert (await finish(browser, state)).status == 200, "the form still works where it was made"


async def test_a_state_made_for_another_browser_is_refused(start, github_answer, env_path):
    client, url = await start()
    await client.get(local(url))
    theirs = await state_of(client)
    client.session.cookie_jar.clear()
    await client.get(local(url))  # the same link, opened in a second browser

    response = await finish(client, theirs)

    assert response.status == 400
    assert "another browser" in (await response.json())["error"]
    assert github_answer["calls"] == []
    assert not env_path.exists()


@pytest.mark.parametrize(
    "forge",
    [
        lambda state: "",
        lambda state: "forged",
        lambda state: state[:-1] + ("0" if state[-1] != "0" else "1"),
        lambda state: "x" + state,
        lambda state: state.replace(".", "..", 1),
        lambda state: state.split(".")[0] + ".99999999999." + state.split(".")[2],
    ],
)
async def test_a_forged_state_is_refused(browser, forge, github_answer, env_path):
    response = await finish(browser, forge(await state_of(browser)))
    assert response.status == 400
    assert "start again" in (await response.json())["error"]
    assert github_answer["calls"] == []
    assert not env_path.exists()


def test_a_state_expires():
    code = SetupCode()
    browser = code.browser(code.new_cookie())
    assert browser
    state = code.new_state(browser, now=1000.0)
    assert not code.use_state(browser, state, now=1000.0 + STATE_TTL + 1)
    assert code.use_state(browser, state, now=1000.0 + STATE_TTL)


async def test_a_state_is_used_once(browser, github_answer, env_path):
    github_answer.update(status=422, body={"message": "code expired"})
    state = await state_of(browser)
    assert (await finish(browser, state)).status == 502

    github_answer.update(status=201)
    replayed = await finish(browser, state)

    assert replayed.status == 400
    assert len(github_answer["calls"]) == 1
    assert not env_path.exists()


async def test_once_saved_the_setup_refuses_to_run_again(start, github_answer, env_path):
    client, url = await start()
    await client.get(local(url))
    states = [await state_of(client), await state_of(client)]
    assert (await finish(client, states[0])).status == 200
    saved = env_path.read_bytes()

    github_answer["body"] = {**github_answer["body"], "id": 666, "webhook_secret": "attacker"}
    assert (await finish(client, states[1])).status == 410
    for path in ["/setup", "/setup/github?org=acme", local(url)]:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 410, path
        assert "restart" in (await response.json())["error"]
    assert "Restart Conjunction" in await (await client.get("/")).text()
    assert env_path.read_bytes() == saved
    assert len(github_answer["calls"]) == 1


async def test_two_callbacks_at_once_save_once(browser, github_answer, env_path):
    states = [await state_of(browser), await state_of(browser)]
    answers = await asyncio.gather(*(finish(browser, state) for state in states))
    assert sorted(answer.status for answer in answers) == [200, 410]
    assert len(github_answer["calls"]) == 1


@pytest.mark.parametrize(
    "forge",
    [
        GitHubSettings(app_id="1", private_key=PEM, webhook_secret="x"),
        GitLabSettings(token="glpat-x"),
    ],
)
async def test_the_setup_does_not_exist_once_a_forge_is_configured(start, forge, caplog):
    client, url = await start(forge=forge)
    assert url is None, "no setup link is logged"
    for path in SETUP_ROUTES:
        response = await client.get(path)
        assert response.status == 404, path
    assert "public projects" in await (await client.get("/")).text(), "/ is the dashboard"
