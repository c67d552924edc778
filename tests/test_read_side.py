"""The read side only reads: nothing under conjunction/views/, no handler but the API's write side,
and not the change's page (conjunction/premerge_view.py) imports the engine. What both sides need
(the history queries, the rows of a commit's report and their count, a change's pre-merge runs)
lives in modules neither owns: conjunction/history.py, conjunction/tally.py and
conjunction/premerge_runs.py."""

from __future__ import annotations

from pathlib import Path

from testkit.server_process import ROOT
from tests.imports import imports_of

# the one handler that hands the engine what CIs report through the API: the write side (forge
# drivers reach it through conjunction.engine_api, tests/test_drivers.py)
WRITE_SIDE = {"conjunction/web/api.py"}


def engine_imports(path: Path) -> list[str]:
    """Each import of `conjunction.engine` (or of a module under it) in a Python file, as
    written."""
    imports = imports_of(path.read_text(), ["conjunction.engine"])
    return [f"line {line}: {name}" for line, name in imports]


def read_side() -> list[Path]:
    package = ROOT / "conjunction"
    views = sorted((package / "views").rglob("*.py"))
    handlers = [
        path
        for path in sorted((package / "web").rglob("*.py"))
        if str(path.relative_to(ROOT)) not in WRITE_SIDE
    ]
    return [*views, package / "premerge_view.py", *handlers]


def test_the_read_side_imports_nothing_of_the_engine() -> None:
    modules = read_side()
    assert ROOT / "conjunction" / "views" / "event_tree.py" in modules
    assert ROOT / "conjunction" / "web" / "pages.py" in modules
    assert ROOT / "conjunction" / "web" / "badges.py" in modules
    offending = {
        str(path.relative_to(ROOT)): found for path in modules if (found := engine_imports(path))
    }
    assert offending == {}


def test_the_check_finds_every_way_of_importing_the_engine(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import conjunction.engine.reports\n"
        "from conjunction.engine import bisects\n"
        "from conjunction.engine.reports import describe\n"
        "from conjunction import tally\n"
        "import conjunction.enginery\n"
        "from conjunction import engine\n"
    )
    assert engine_imports(module) == [
        "line 1: conjunction.engine.reports",
        "line 2: conjunction.engine",
        "line 2: conjunction.engine.bisects",
        "line 3: conjunction.engine.reports",
        "line 3: conjunction.engine.reports.describe",
        "line 6: conjunction.engine",
    ]
