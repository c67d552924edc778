import json
import os
import stat
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web

from config.settings import Settings, load_settings
from handlers.setup import APP_YML, setup_routes
from tests.keys import PRIVATE_KEY_PEM as PEM

PUBLIC = "https://conjunction.example.com"
PERMISSIONS = {
    "actions": "write",
    "contents": "write",
    "checks": "write",
    "statuses": "write",
    "issues": "write",
    "pull_requests": "read",
    "metadata": "read",
}
EVENTS = ["check_suite", "push", "status", "workflow_run"]


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
async def session():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def env_path(tmp_path):
    return tmp_path / ".env"


@pytest.fixture
def make_client(aiohttp_client, session, env_path):
    async def make(settings: Settings):
        app = web.Application()
        app.add_routes(setup_routes(settings, env_path, lambda: session))
        return await aiohttp_client(app)

    return make


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
async def fake_github(aiohttp_server, github_answer):
    async def conversions(request: web.Request) -> web.Response:
        github_answer["calls"].append((request.method, request.path))
        return web.json_response(github_answer["body"], status=github_answer["status"])

    app = web.Application()
    app.router.add_post("/app-manifests/{code}/conversions", conversions)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_setup_page_posts_the_manifest_to_github(make_client):
    client = await make_client(Settings(public_url=PUBLIC))
    response = await client.get("/")
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


async def test_each_page_has_its_own_state(make_client):
    client = await make_client(Settings(public_url=PUBLIC))
    actions = [manifest_form(await (await client.get("/")).text())["action"] for _ in range(2)]
    assert actions[0] != actions[1]


def test_app_yml_asks_for_exactly_the_documented_permissions():
    data = yaml.safe_load(APP_YML.read_text())
    assert data["default_permissions"] == PERMISSIONS
    assert data["default_events"] == EVENTS
    assert not [event for event in data["default_events"] if event.startswith("installation")]


async def test_organization_form_targets_the_organization(make_client):
    client = await make_client(Settings(public_url=PUBLIC))
    page = await (await client.get("/")).text()
    org_form = next(form for form in Forms(page).forms if "org" in form["inputs"])
    assert (org_form["method"], org_form["action"]) == ("get", "/setup/github")

    response = await client.get("/setup/github", params={"org": "acme"})
    assert response.status == 200
    action = urlsplit(manifest_form(await response.text())["action"])
    assert action.netloc == "github.com"
    assert action.path == "/organizations/acme/settings/apps/new"


async def test_a_bad_organization_name_is_refused(make_client):
    client = await make_client(Settings(public_url=PUBLIC))
    response = await client.get("/setup/github", params={"org": "acme/../x"})
    assert response.status == 400
    assert "organization" in (await response.json())["error"]


async def test_enterprise_server_forms_go_to_its_own_host(make_client):
    settings = Settings(public_url=PUBLIC, github_api_url="https://ghe.acme.dev/api/v3")
    client = await make_client(settings)
    action = urlsplit(manifest_form(await (await client.get("/")).text())["action"])
    assert (action.scheme, action.netloc, action.path) == (
        "https",
        "ghe.acme.dev",
        "/settings/apps/new",
    )


async def test_page_is_gone_once_github_is_configured(make_client):
    settings = Settings(
        github_app_id="1", github_private_key=PEM, github_webhook_secret="x", public_url=PUBLIC
    )
    client = await make_client(settings)
    response = await client.get("/")
    assert response.status == 404
    assert "error" in await response.json()


async def test_callback_with_unknown_state_is_refused(make_client, env_path):
    client = await make_client(Settings(public_url=PUBLIC))
    response = await client.get("/setup/github/callback", params={"code": "C", "state": "forged"})
    assert response.status == 400
    assert "start again" in (await response.json())["error"]
    assert not env_path.exists()


async def state_from_setup_page(client) -> str:
    action = manifest_form(await (await client.get("/")).text())["action"]
    return parse_qs(urlsplit(action).query)["state"][0]


async def test_callback_saves_the_credentials(
    make_client, fake_github, github_answer, env_path, monkeypatch
):
    env_path.write_text('PORT=4000\nGITHUB_APP_ID=1\nCONJUNCTION_ADMIN_TOKEN="keep me"\n')
    client = await make_client(Settings(public_url=PUBLIC, github_api_url=fake_github))
    state = await state_from_setup_page(client)

    response = await client.get("/setup/github/callback", params={"code": "CODE", "state": state})

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
    assert os.listdir(env_path.parent) == [".env"]

    for key in list(os.environ):
        if key.startswith(("GITHUB_", "CONJUNCTION_", "GITLAB_")) or key == "PORT":
            monkeypatch.delenv(key)
    loaded = load_settings(env_path)
    assert loaded.github_enabled
    assert loaded.github_app_id == "12345"
    assert loaded.github_private_key == PEM
    assert loaded.github_webhook_secret == "s3cret-hook"
    assert loaded.port == 4000
    assert loaded.admin_token == "keep me"


async def test_a_state_is_used_once(make_client, fake_github, env_path):
    client = await make_client(Settings(public_url=PUBLIC, github_api_url=fake_github))
    params = {"code": "CODE", "state": await state_from_setup_page(client)}
    assert (await client.get("/setup/github/callback", params=params)).status == 200
    assert (await client.get("/setup/github/callback", params=params)).status == 400


async def test_github_error_is_a_502(make_client, fake_github, github_answer, env_path):
    github_answer.update(status=404, body={"message": "Not Found"})
    client = await make_client(Settings(public_url=PUBLIC, github_api_url=fake_github))
    state = await state_from_setup_page(client)

    response = await client.get("/setup/github/callback", params={"code": "OLD", "state": state})

    assert response.status == 502
    error = (await response.json())["error"]
    assert "GitHub did not create the app" in error
    assert "Not Found" in error
    assert not env_path.exists()
