"""The ecosystem of `python app.py demo`: projects on the simulated forge
(`conjunction.forges.demo`),
how their pipelines end, and the pushes that keep it moving.

    core ──> http ──> web ──> site        a chain, and a diamond (web needs http and json)
      ├────> json ───┘
      ├────> cli                          flaky: fails now and then, passes when run again
      ├────> plugins                      broken by core's rename, fixed when core relents
      └────> internal                     private: only the admin sees it
    docs                                  an invalid .conjunction.yml
    parser ──> lint                       a merge of five commits breaks lint: its culprit
                                          search (`bisect: true`) names the third

After core's second push (the rename that breaks plugins), ada opens a pull request on top of
it: run before it merges, it breaks json and fixes plugins (a pre-merge check, CONTRACT §8).

Core gets a new commit every 20 s (divided by `speed`); parser gets its commits beside core's
first, second and seventh; the engine does the rest, exactly as it would for a real forge.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from itertools import count

from conjunction.engine_api import FinishedPipeline
from conjunction.forges.demo import HOST, DemoForge, Outcome
from conjunction.models import utcnow
from conjunction.results import Result
from conjunction.runner import TriggerRequest
from conjunction.runs import Change

log = logging.getLogger(__name__)

OWNER = f"{HOST}/acme"
CORE, HTTP, JSON, WEB, SITE = (
    f"{OWNER}/{name}" for name in ("core", "http", "json", "web", "site")
)
CLI, PLUGINS, INTERNAL, DOCS = (
    f"{OWNER}/{name}" for name in ("cli", "plugins", "internal", "docs")
)
PARSER, LINT = f"{OWNER}/parser", f"{OWNER}/lint"
CONFIG = ".conjunction.yml"


def _config(owner: str, *upstreams: str, extra: str = "") -> str:
    entries = "".join(f"  - project: {name}\n{extra}" for name in upstreams)
    return f"owners: [{owner}]\n" + (f"upstreams:\n{entries}" if upstreams else "")


CONFIGS = {
    CORE: "owners: [ada]\nreport:\n  issues: true\npremerge:\n  when: members\n",
    HTTP: _config("grace", CORE),
    JSON: _config("linus", CORE),
    WEB: _config("margaret", HTTP, JSON),
    SITE: _config("tim", WEB),
    CLI: _config("ken", CORE, extra="    confirm: true\n"),
    PLUGINS: _config("barbara", CORE),
    INTERNAL: _config("dennis", CORE),
    DOCS: f"owners: [mary]\nupstreams:\n  - project: {CORE}\n    brnaches: [main]\n",
    PARSER: "owners: [edsger]\n",
    LINT: _config("frances", PARSER, extra="    bisect: true\n"),
}
PRIVATE = {INTERNAL}
# Typical pipeline length of each project, in seconds.
SECONDS = {
    **{CORE: 4, HTTP: 6, JSON: 5, WEB: 9, SITE: 7, CLI: 5, PLUGINS: 8, INTERNAL: 6, DOCS: 3},
    **{PARSER: 3, LINT: 4},
}
# Core's commits, round and round; the second breaks plugins, the fourth fixes it.
CORE_COMMITS = [
    ("Add a streaming parser", False),
    ("Rename Config.load to Config.read", True),
    ("Speed up the tokenizer", True),
    ("Keep Config.load as a deprecated alias", False),
    ("Document the plugin API", False),
    ("Tidy the release script", False),
]
# Parser's pushes, beside core's push of the same number: one commit, then a merge of five at
# once whose third breaks lint, then — well after lint's culprit search — the fix.
# (message, author)
PARSER_PUSHES = {
    0: [("Add the grammar", "edsger")],
    1: [
        ("Parse raw strings", "grace"),
        ("Speed up the lexer", "linus"),
        ("Rename Token.kind to Token.type", "barbara"),
        ("Document the grammar", "ada"),
        ("Tidy the tests", "ken"),
    ],
    6: [("Keep Token.kind as an alias", "barbara")],
}
BREAKS_LINT, FIXES_LINT = "Rename Token.kind to Token.type", "Keep Token.kind as an alias"
LINT_NOTE = "tests/test_rules.py::test_kinds: AttributeError: 'Token' has no attribute 'kind'"
CHANGE_AFTER = 2  # pushes to core before ada's pull request
CHANGE_TITLE = "Restore Config.load; parse numbers as decimals"
CHANGE_NOTE = "tests/test_numbers.py::test_parse: Decimal('1.5') != 1.5"
FLAKY_EVERY = 3  # cli fails one run in three
PUSH_EVERY = 20.0
BROKEN_NOTE = "tests/test_loader.py::test_load: AttributeError: 'Config' has no attribute 'load'"
FLAKY_NOTE = "tests/test_fetch.py::test_mirror: timed out waiting for the package mirror"


class Ecosystem:
    """The simulated forge with its projects, and the decisions of its simulated CI."""

    def __init__(self, base_url: str, *, speed: float = 1.0, seed: int | None = None) -> None:
        self.speed = speed
        self.forge = DemoForge(base_url, self.outcome)
        self._random = random.Random(seed)
        self._pushes = count()
        self._parser_pushes = count()
        self.pushes = 0  # to core so far
        self._broken: set[str] = set()  # core commits that break plugins
        self._lint_broken: set[str] = set()  # parser commits lint fails against
        self._cli_runs = count(1)
        self.change: Change | None = None  # ada's pull request, once opened
        self.forge.writers.add("ada")
        for name, config in CONFIGS.items():
            self.forge.add_project(name, {CONFIG: config}, private=name in PRIVATE)

    @property
    def projects(self) -> list[str]:
        return list(CONFIGS)

    def outcome(self, project: str, request: TriggerRequest | None) -> Outcome:
        seconds = SECONDS[project] * self._random.uniform(0.7, 1.3) / self.speed
        change = self.change
        if request is not None and change is not None and request.upstream_sha == change.head_sha:
            if project == JSON:  # the change breaks json, and fixes plugins
                return Outcome(seconds, Result.FAILURE, CHANGE_NOTE)
            if project == PLUGINS:
                return Outcome(seconds, Result.SUCCESS)
        if project == PLUGINS and request is not None and request.upstream_sha in self._broken:
            return Outcome(seconds, Result.FAILURE, BROKEN_NOTE)
        if project == LINT and request is not None and request.upstream_sha in self._lint_broken:
            return Outcome(seconds, Result.FAILURE, LINT_NOTE)
        if project == CLI and next(self._cli_runs) % FLAKY_EVERY == 0:
            return Outcome(seconds, Result.FAILURE, FLAKY_NOTE)
        return Outcome(seconds, Result.SUCCESS)

    def push_core(self) -> None:
        """Core's next commit; its own pipeline starts at once."""
        self.pushes = next(self._pushes) + 1
        message, breaks = CORE_COMMITS[(self.pushes - 1) % len(CORE_COMMITS)]
        run = self.forge.push(CORE, message)
        if breaks:
            self._broken.add(run.sha)

    def push_parser(self) -> None:
        """Parser's next commits, when it has some this time: pushed at once, one pipeline (of
        the last)."""
        commits = PARSER_PUSHES.get(next(self._parser_pushes), [])
        broken = bool(self._lint_broken) and self.forge.head(PARSER).sha in self._lint_broken
        for number, (message, author) in enumerate(commits, 1):
            broken = (broken or message == BREAKS_LINT) and message != FIXES_LINT
            if number < len(commits):
                sha = self.forge.commit(PARSER, message, author).sha
            else:
                sha = self.forge.push(PARSER, message, author).sha
            if broken:
                self._lint_broken.add(sha)

    def open_change(self) -> Change:
        """Ada's pull request on core, on top of its head."""
        base = self.forge.head(CORE)
        head = self.forge.change_commit(CORE, CHANGE_TITLE)
        self.change = Change(
            CORE,
            1,
            f"{self.forge.base_url}/demo/commits/{head.sha}",
            head.sha,
            base.sha,
            author="ada",
            title=CHANGE_TITLE,
        )
        return self.change

    async def index(self, refresh: Callable[[str], Awaitable[object]]) -> None:
        """Have Conjunction index every project, as installing the app would."""
        for name in self.projects:
            await refresh(name)

    async def run(
        self,
        report: Callable[[FinishedPipeline], Awaitable[object]],
        wakeup: Callable[[], None],
        changed: Callable[[Change], Awaitable[object]] | None = None,
    ) -> None:
        """Push to core, open ada's pull request after its second push (told to `changed`),
        and finish pipelines as they come due, until cancelled."""
        interval = timedelta(seconds=PUSH_EVERY / self.speed)
        tick = min(0.25, 1 / self.speed)
        next_push = utcnow()
        while True:
            now = utcnow()
            if now >= next_push:
                self.push_core()
                self.push_parser()
                next_push = now + interval
                if changed is not None and self.change is None and self.pushes == CHANGE_AFTER:
                    await changed(self.open_change())
                    wakeup()
            if await self.forge.finish_due(report, now):
                wakeup()
            await asyncio.sleep(tick)
