"""The pages in a real headless Chromium (Debian's `chromium`, driven by Playwright): every page
kind on the demo's ecosystem, clicking through, the graph, visibility, and a running event that
updates without a reload.

Screenshots go to a temporary directory; with CONJUNCTION_SCREENSHOTS=1 they replace the ones in
docs/screenshots/ that the README shows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.demo import (
    BROKEN_NOTE,
    CLI,
    CORE,
    CORE_COMMITS,
    DOCS,
    INTERNAL,
    JSON,
    PLUGINS,
    Ecosystem,
)
from conjunction.models import utcnow
from conjunction.results import Result
from conjunction.runtime import Runtime
from conjunction.web import demo
from conjunction.web.context import RUNTIME
from conjunction.web.graph import _layout, layout
from testkit.memoryhost import MemoryHost
from testkit.server_process import ROOT, free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 20_000  # for a page to change: generous, the machine is shared
BIG = 300  # projects in the graph that must stay usable

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium: `apt-get install chromium` to run the browser tests",
    ),
]
playwright = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install -e '.[test]'"
)


class Demo:
    """The demo's ecosystem on a real server, moved step by step by the test."""

    def __init__(self, runtime: Runtime, ecosystem: Ecosystem, url: str) -> None:
        self.runtime = runtime
        self.ecosystem = ecosystem
        self.url = url

    async def settle(self) -> None:
        """Finish every pipeline and run every job, until nothing is left."""
        later = utcnow() + timedelta(days=1)
        while True:
            finished = await self.ecosystem.forge.finish_due(
                self.runtime.engine.pipeline_finished, later
            )
            if not finished and not await self.runtime.worker.run_until_idle():
                return

    async def push(self) -> None:
        """Core's next commit, and everything that follows from it."""
        self.ecosystem.push_core()
        await self.settle()

    async def push_and_start(self) -> None:
        """A commit to core whose downstreams are started and left running."""
        self.ecosystem.push_core()
        [run] = self.ecosystem.forge.running()
        await self.ecosystem.forge.finish(
            run, self.runtime.engine.pipeline_finished, Result.SUCCESS
        )
        await self.runtime.worker.run_until_idle()


@pytest.fixture
async def demo_server(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Demo]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        public_url=url,
        admin_token="admin-token",
    )
    ecosystem = Ecosystem(url, seed=1)
    app = create_app(settings, adapters=Adapters.of(ecosystem.forge), run_workers=False)
    demo.install(app, ecosystem, drive=False)
    await aiohttp_server(app, port=port)
    runtime = app[RUNTIME]
    await ecosystem.index(runtime.engine.refresh_project)
    server = Demo(runtime, ecosystem, url)
    await server.push()
    yield server


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        await chromium.close()


def screenshots(tmp_path: Path) -> Path:
    if os.environ.get("CONJUNCTION_SCREENSHOTS"):
        return ROOT / "docs" / "screenshots"
    return tmp_path


async def test_click_through_every_page_kind(
    demo_server: Demo, browser: Any, tmp_path: Path
) -> None:
    for _ in range(2):  # core's second commit breaks plugins, its third does not fix it
        await demo_server.push()
    shots = screenshots(tmp_path)
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    expect = playwright.expect

    await page.goto(demo_server.url + "/")
    await expect(page.get_by_role("heading", name="Current breakages")).to_be_visible()
    await expect(page.locator("main")).not_to_contain_text(INTERNAL)
    await page.screenshot(path=shots / "home.png", full_page=True)

    await page.get_by_role("link", name=CORE, exact=True).first.click()
    await expect(page.get_by_role("heading", name=CORE, exact=True)).to_be_visible()
    await expect(page.locator("svg.graph a.node")).to_have_count(5)  # core, 4 public downstreams
    await expect(page.locator("table.matrix")).to_contain_text("a private project")
    charts = page.locator("figure svg.chart")
    await expect(charts.first).to_have_attribute(
        "aria-label", "Downstream pass rate of each upstream success, oldest first"
    )
    await expect(charts.nth(1)).to_have_attribute(
        "aria-label",
        "Time until all downstreams answered, for each upstream success, oldest first",
    )
    await expect(charts.first.locator("rect.bar")).to_have_count(3)  # core's three commits
    await expect(page.locator("#badge-md")).to_contain_text(f"/badges/{CORE}.svg")

    await page.locator("table.matrix tbody tr").first.locator("th a").click()
    await expect(page.locator(".aggregate")).to_contain_text("downstream projects passed")
    await expect(page.locator("ol.tree")).to_contain_text(
        re.compile("still failing|new regression")
    )
    await page.screenshot(path=shots / "event.png", full_page=True)

    await page.locator(".node", has_text=PLUGINS).get_by_role("link", name="run").click()
    await expect(page.locator("pre")).to_contain_text("has no attribute 'load'")

    await page.goto(demo_server.url + "/graph")
    nodes = page.locator("svg#graph a.node")
    await expect(nodes).to_have_count(len(demo_server.ecosystem.projects) - 1)
    assert await page.locator(f'[data-project="{INTERNAL}"]').count() == 0

    await page.goto(f"{demo_server.url}/projects/{DOCS}")
    await expect(page.locator("#config-error")).to_have_text("Invalid .conjunction.yml")
    await expect(page.locator("main")).to_contain_text("brnaches")

    missing = await page.goto(demo_server.url + "/projects/demo.test/acme/nothing")
    assert missing is not None and missing.status == 404
    await expect(page.get_by_role("heading", name="404 Not Found")).to_be_visible()
    await context.close()


async def test_a_running_event_updates_without_a_reload(
    demo_server: Demo, browser: Any, tmp_path: Path
) -> None:
    await demo_server.push_and_start()
    [origin] = [
        run.request.parent_id
        for run in demo_server.ecosystem.forge.running()
        if run.request and run.project == PLUGINS
    ]
    context = await browser.new_context(
        color_scheme="dark", viewport={"width": 1200, "height": 800}
    )
    page = await context.new_page()
    await page.goto(f"{demo_server.url}/events/{origin}")
    aggregate = page.locator(".aggregate")
    await playwright.expect(aggregate).to_contain_text("5 running")
    await page.screenshot(path=screenshots(tmp_path) / "event-running-dark.png", full_page=True)
    await page.evaluate("window.stayed = true")

    await demo_server.settle()

    await playwright.expect(aggregate).not_to_contain_text("running", timeout=WAIT_MS)
    posted = demo_server.ecosystem.forge.reports[demo_server.ecosystem.forge.head(CORE).sha]
    assert posted.status is not None
    assert posted.status.description.startswith(
        "4 of 5 downstream projects passed (6 of 7 in the tree)"
    )
    await playwright.expect(aggregate).to_have_text(posted.status.description)
    assert await page.evaluate("window.stayed === true"), "the page was not reloaded"
    await context.close()


async def test_the_home_and_project_pages_follow_results_without_a_reload(
    demo_server: Demo, browser: Any
) -> None:
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    home, project = await context.new_page(), await context.new_page()
    await home.goto(demo_server.url + "/")
    await project.goto(f"{demo_server.url}/projects/{CORE}")
    for page in (home, project):
        await page.evaluate("window.stayed = true")
    expect = playwright.expect

    await demo_server.push_and_start()
    sha = demo_server.ecosystem.forge.head(CORE).sha
    live = home.locator("#home-live")
    await expect(live.locator("tr", has_text=sha[:7])).to_contain_text("running", timeout=WAIT_MS)
    matrix = project.locator("table.matrix tbody tr").first
    await expect(matrix).to_contain_text(sha[:7], timeout=WAIT_MS)
    await expect(matrix).to_contain_text("running")

    await demo_server.settle()

    posted = demo_server.ecosystem.forge.reports[sha].status
    assert posted is not None and posted.state != "pending"
    row = live.locator("tr", has_text=sha[:7])
    await expect(row).to_contain_text(posted.description, timeout=WAIT_MS)
    await expect(matrix).not_to_contain_text("running", timeout=WAIT_MS)
    for page in (home, project):
        assert await page.evaluate("window.stayed === true"), "the page was not reloaded"
    await context.close()


async def test_an_event_page_says_what_changed_and_how_a_failure_is_confirmed(
    demo_server: Demo, browser: Any
) -> None:
    await demo_server.push()  # core's second commit breaks plugins
    await demo_server.push_and_start()  # its third: cli fails (one run in three) and is re-run
    forge, engine = demo_server.ecosystem.forge, demo_server.runtime.engine
    [cli] = [run for run in forge.running() if run.project == CLI]
    assert cli.request is not None and cli.planned is Result.FAILURE
    await forge.finish(cli, engine.pipeline_finished, cli.planned)
    await demo_server.runtime.worker.run_until_idle()

    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    await page.goto(f"{demo_server.url}/events/{cli.request.parent_id}")
    expect = playwright.expect
    await expect(page.locator(".aggregate")).to_contain_text("confirming 1 failure")
    cli_node = page.locator(".node", has=page.locator(f'.head a[href="/projects/{CLI}"]'))
    steps = cli_node.locator("ol.steps li")
    await expect(steps).to_have_count(1)
    await expect(steps.first).to_contain_text("Re-run against the same upstream commit")
    await expect(steps.first).to_contain_text("running")

    await demo_server.settle()

    await expect(cli_node.locator(".meaning")).to_contain_text("flaky", timeout=WAIT_MS)
    await expect(steps.first).to_contain_text("passed")
    await expect(page.locator(".aggregate")).not_to_contain_text("confirming")
    plugins = page.locator(".node", has=page.locator(f'.head a[href="/projects/{PLUGINS}"]'))
    changed = plugins.locator("details.changes")
    await expect(changed).to_contain_text("What changed since it last passed")
    await expect(changed.locator(".culprit")).to_contain_text(
        f"{PLUGINS} did not change since it last passed"
    )
    await expect(changed).to_contain_text(CORE_COMMITS[1][0])  # the rename that broke it
    await expect(changed).to_contain_text(CORE_COMMITS[2][0])
    await changed.locator("summary").click()  # folds away
    await expect(changed.locator(".culprit")).to_be_hidden()
    await context.close()


async def test_the_simulated_forge_shows_the_check_summary_and_the_breakage_issue(
    demo_server: Demo, browser: Any
) -> None:
    await demo_server.push()  # core's second commit breaks plugins
    forge = demo_server.ecosystem.forge
    sha = forge.head(CORE).sha
    [issue] = [issue for issue in forge.issues if issue.project == PLUGINS]
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    expect = playwright.expect

    await page.goto(f"{demo_server.url}/demo/commits/{sha}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"{CORE} at {sha[:7]}")
    await expect(page.locator("main")).to_contain_text(CORE_COMMITS[1][0])
    check = page.get_by_role("heading", name="Check run “Conjunction: downstream”")
    await expect(check).to_be_visible()
    summary = check.locator("xpath=following-sibling::div[contains(@class, 'markdown')][1]//table")
    await expect(summary.locator("thead th")).to_have_text(
        ["Downstream", "Result", "Run", "Duration", "Owners", "Changes since last pass"]
    )
    row = summary.locator("tbody tr", has_text=PLUGINS)
    await expect(row).to_have_count(1)
    cells = row.locator("td")
    await expect(cells.nth(0)).to_have_text(PLUGINS)
    await expect(cells.nth(1)).to_contain_text("new regression")
    await expect(cells.nth(1).locator("svg.icon.st-failed")).to_have_count(1)  # not an emoji
    await expect(cells.nth(4)).to_have_text("barbara")
    await expect(cells.nth(5).get_by_role("link", name="compare")).to_have_attribute(
        "href", re.compile(r"/demo/compare/[0-9a-f]{40}\.\.\." + sha + "$")
    )
    await expect(summary).to_contain_text("1 private project")
    await expect(summary).not_to_contain_text(INTERNAL)
    await cells.nth(2).get_by_role("link", name="run").click()
    await expect(page.locator("pre")).to_contain_text(f"FAILED {BROKEN_NOTE}")

    await page.goto(demo_server.url + "/demo")
    await page.get_by_role("link", name=f"#{issue.number} {issue.title}").click()
    await page.wait_for_url(f"**/demo/issues/{issue.number}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"#{issue.number} {PLUGINS} fails against {CORE}"
    )
    main = page.locator("main")
    await expect(main).to_contain_text("open · " + PLUGINS + " · labels: conjunction")
    owners = main.locator("p", has_text="owners:")
    await expect(owners).to_have_text(["Downstream owners: @barbara", "Upstream owners: @ada"])
    await expect(main).to_contain_text(CORE_COMMITS[1][0])  # the commit that broke it
    await expect(main).not_to_contain_text("conjunction:breakage")  # the hidden marker
    await context.close()


async def test_the_private_project_is_the_admins_only(
    demo_server: Demo, browser: Any, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = await context.new_page()
    await page.goto(demo_server.url + "/login?next=/graph")
    await page.get_by_label("Admin token").fill("admin-token")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/graph")
    await playwright.expect(page.locator(f'[data-project="{INTERNAL}"]')).to_have_count(1)

    await page.goto(demo_server.url + "/")
    await playwright.expect(page.locator("main")).to_contain_text(INTERNAL)
    await page.screenshot(path=screenshots(tmp_path) / "home-phone-admin.png", full_page=True)
    origin = await page.locator("main a[href^='/events/']").first.get_attribute("href")
    for path in ("/", f"/projects/{CORE}", "/graph", str(origin)):
        await page.goto(demo_server.url + path)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is wider than the phone by {overflow}px"

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(demo_server.url + "/")
    await playwright.expect(page.locator("main")).not_to_contain_text(INTERNAL)
    await context.close()


async def test_keyboard_and_dark_mode(demo_server: Demo, browser: Any) -> None:
    context = await browser.new_context(
        color_scheme="dark", viewport={"width": 1200, "height": 800}
    )
    page = await context.new_page()
    await page.goto(demo_server.url + "/")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", "the dark palette"
    await page.keyboard.press("Tab")
    await playwright.expect(page.locator(":focus")).to_have_text("Skip to the content")

    await page.goto(demo_server.url + "/graph")
    for _ in range(60):  # Tab through the page until a project of the graph has the focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.matches('svg a.node')"):
            break
    else:
        raise AssertionError("no project of the graph takes the keyboard's focus")
    name = await page.evaluate("document.activeElement.getAttribute('data-project')")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/projects/{name}")

    await page.goto(demo_server.url + "/graph")
    svg = page.locator("svg#graph")
    width = float(await svg.get_attribute("width") or 0)
    await page.locator("#graph-box").focus()
    await page.keyboard.press("+")
    assert float(await svg.get_attribute("width") or 0) > width, "+ zooms in"
    await context.close()


async def document_overflow(page: Any) -> float:
    overflow: float = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


@pytest.mark.parametrize(("width", "height", "suffix"), [(1280, 800, ""), (390, 844, "-phone")])
async def test_the_matrix_and_the_graph_at_1280_and_390_px(
    demo_server: Demo, browser: Any, tmp_path: Path, width: int, height: int, suffix: str
) -> None:
    """The matrix scrolls in its own box with short headers, the page never wider than the
    screen; the graph fills its canvas with labels that can be read."""
    for _ in range(2):
        await demo_server.push()
    shots = screenshots(tmp_path)
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await page.goto(f"{demo_server.url}/projects/{CORE}")
    assert await document_overflow(page) <= 0, "the page is no wider than the screen"
    headers = page.locator("table.matrix thead th a")
    await playwright.expect(headers).to_have_count(4)  # the private one is not a link
    for at in range(4):
        header = headers.nth(at)
        full = await header.get_attribute("title")
        assert full is not None and full.startswith("demo.test/acme/")
        assert await header.inner_text() == full.rsplit("/", 1)[1], "the repository's name"
        await playwright.expect(page.locator("dl.names")).to_contain_text(full)
    box = page.locator(".matrix-box")
    sizes = await box.evaluate("b => [b.scrollWidth, b.clientWidth]")
    if width < 600:
        assert sizes[0] > sizes[1], "on a phone the matrix scrolls inside its box"
        await box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
        assert await document_overflow(page) <= 0
        commit = await page.locator("table.matrix tbody th").first.bounding_box()
        assert commit is not None and commit["x"] >= 0, "the commit column stays in view"
    else:
        assert sizes[0] <= sizes[1], "at 1280 px the whole matrix shows"
    await page.locator("#matrix").scroll_into_view_if_needed()
    await page.screenshot(path=shots / f"project{suffix}.png", full_page=True)

    await page.goto(demo_server.url + "/graph")
    shown = len(demo_server.ecosystem.projects) - 1  # the private one aside
    await playwright.expect(page.locator("svg#graph a.node")).to_have_count(shown)
    assert await document_overflow(page) <= 0
    canvas = await page.locator("#graph-box").bounding_box()
    nodes = await page.locator("svg#graph a.node rect").evaluate_all(
        "rs => rs.map(r => r.getBoundingClientRect()).map(b => [b.left, b.right, b.top, b.bottom])"
    )
    assert canvas is not None
    spread = (max(n[1] for n in nodes) - min(n[0] for n in nodes)) / canvas["width"]
    if width > 600:
        assert spread >= 0.8, f"the nodes span {spread:.0%} of the canvas's width"
    else:
        assert spread >= 1, "on a phone it spans the canvas, and scrolls in it"
    label = await page.locator("svg#graph a.node text").first.bounding_box()
    assert label is not None and label["height"] >= 10, "a label can be read"
    failing = page.locator(f'svg#graph path.edge.e-failed[data-edge="{CORE} {PLUGINS}"]')
    await playwright.expect(failing).to_have_count(1)
    assert await page.locator("svg#graph path.edge.e-passed").count() >= 3
    docs = page.locator(f'svg#graph a.node[data-project="{DOCS}"]')
    await playwright.expect(docs).to_have_attribute(
        "aria-label", f"{DOCS}: invalid .conjunction.yml; latest run: no runs yet"
    )
    await page.screenshot(path=shots / f"graph{suffix}.png", full_page=True)
    await context.close()


@pytest.fixture
async def big_server(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """An instance with a few hundred projects: 30 libraries, each application building
    against two of them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'big.db'}", public_url=url)
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    await aiohttp_server(app, port=port)
    engine = app[RUNTIME].engine
    names, edges = big_ecosystem()
    for name in names:
        libraries = sorted(up for up, down in edges if down == name)
        config = "".join(f"  - project: {library}\n" for library in libraries)
        await engine.index_project(
            name,
            private=False,
            default_branch="main",
            config_text=f"upstreams:\n{config}" if config else None,
        )
    yield url, names


def big_ecosystem() -> tuple[list[str], list[tuple[str, str]]]:
    """BIG projects: 30 libraries, each application building against two of them."""
    names = [f"github.com/org{n % 9}/project-{n}" for n in range(BIG)]
    edges = [
        (library, name)
        for n, name in enumerate(names)
        if n >= 30
        for library in sorted({names[(n * 7) % 30], names[(n * 11 + 3) % 30]} - {name})
    ]
    return names, edges


@pytest.mark.parametrize(("width", "height", "suffix"), [(1280, 800, ""), (390, 844, "-phone")])
async def test_the_graph_of_300_projects_at_1280_and_390_px(
    big_server: tuple[str, list[str]],
    browser: Any,
    tmp_path: Path,
    width: int,
    height: int,
    suffix: str,
) -> None:
    """Readable at first (it scrolls in its box), and its layout's time measured, not judged:
    `pytest -s` prints it."""
    url, _ = big_server
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    started = time.perf_counter()
    await page.goto(url + "/graph")  # laid out on the server, then drawn
    await playwright.expect(page.locator("svg#graph a.node")).to_have_count(BIG)
    shown = time.perf_counter() - started
    names, edges = big_ecosystem()
    _layout.cache_clear()
    started = time.perf_counter()
    drawing = layout(names, edges)
    laid_out = time.perf_counter() - started
    print(
        f"\n{BIG} projects, {len(edges)} links: layout {laid_out * 1000:.0f} ms "
        f"({drawing.width:.0f} x {drawing.height:.0f} px); /graph at {width} px loaded and "
        f"drawn in {shown * 1000:.0f} ms"
    )
    assert await document_overflow(page) <= 0, "the page is no wider than the screen"
    sizes = await page.locator("#graph-box").evaluate("b => [b.scrollWidth, b.clientWidth]")
    assert sizes[0] > sizes[1], "the graph scrolls inside its box"
    label = await page.locator("svg#graph a.node text").first.bounding_box()
    assert label is not None and label["height"] >= 10, "a label can be read"
    texts = await page.locator("svg#graph a.node text").evaluate_all(
        "texts => texts.map(t => t.textContent)"
    )
    assert len(set(texts)) == BIG and all(text.startswith("project-") for text in texts)
    if suffix:
        await page.screenshot(path=screenshots(tmp_path) / f"graph-300{suffix}.png")
    await context.close()


async def test_the_graph_of_a_few_hundred_projects_is_usable(
    big_server: tuple[str, list[str]], browser: Any, tmp_path: Path
) -> None:
    url, names = big_server
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    await page.goto(url + "/graph")
    nodes = page.locator("svg#graph a.node")
    await playwright.expect(nodes).to_have_count(BIG)
    box = page.locator("#graph-box")
    assert (await box.bounding_box() or {"height": 0})["height"] <= 800, "it scrolls in its box"

    await page.get_by_role("button", name="Fit").click()
    svg = page.locator("svg#graph")
    fitted = await svg.bounding_box()
    inside = await box.bounding_box()
    assert fitted is not None and inside is not None
    await page.screenshot(path=screenshots(tmp_path) / "graph-300.png")
    assert (
        fitted["width"] <= inside["width"] + 1
        and fitted["height"] <= max(inside["height"], 300) + 1
    )

    await page.get_by_label("Around project").fill(names[3])
    await page.get_by_label("links away").select_option("1")
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_url("**/graph?focus=*")
    around = await nodes.count()
    assert 2 < around < BIG / 4, around
    await playwright.expect(
        page.locator(f'svg#graph a.node.focus[data-project="{names[3]}"]')
    ).to_have_count(1)
    await page.locator(f'svg#graph a.node[data-project="{names[3]}"]').click()
    await page.wait_for_url(f"**/projects/{names[3]}")
    await context.close()


async def test_a_change_page_from_its_check_to_its_runs(
    demo_server: Demo, browser: Any, tmp_path: Path
) -> None:
    await demo_server.push()  # core's rename, which breaks plugins: ada's change goes on top
    change = demo_server.ecosystem.open_change()
    await demo_server.runtime.engine.change_updated(change)
    await demo_server.settle()
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    expect = playwright.expect

    # the head commit's pre-merge check links to the change's page
    await page.goto(f"{demo_server.url}/demo/commits/{change.head_sha}")
    await expect(page.locator("main")).to_contain_text("Conjunction: downstream (pre-merge)")
    await page.get_by_role("link", name="details").click()
    await expect(page).to_have_url(f"{demo_server.url}/changes/{CORE}/1")
    rows = page.locator("table.premerge-rows tbody tr")
    await expect(rows.filter(has_text=JSON)).to_contain_text("breaks")
    await expect(rows.filter(has_text=PLUGINS)).to_contain_text("fixes")
    await expect(page.locator(".premerge-state")).to_contain_text("a required downstream breaks")
    await expect(page.locator("main")).not_to_contain_text(INTERNAL)
    await expect(page.locator("main")).to_contain_text("a private project")
    await page.screenshot(path=screenshots(tmp_path) / "change.png", full_page=True)

    # each step leads to its event, which says what its CI was sent
    await page.locator("ol.premerge-steps li", has_text=JSON).first.get_by_role("link").click()
    await expect(page.locator("p.premerge")).to_contain_text("kind: premerge")
    await page.get_by_role("link", name="#1").click()
    await expect(page).to_have_url(f"{demo_server.url}/changes/{CORE}/1")

    # the project page lists the open change
    await page.goto(f"{demo_server.url}/projects/{CORE}")
    await page.locator("#changes + ul").get_by_role("link", name="#1").click()
    await expect(page).to_have_url(f"{demo_server.url}/changes/{CORE}/1")
    await context.close()
