"""Which packages a module's source imports, for the tests that keep parts of the code apart
(the read side from the engine, the drivers from the engine, the core from the forges)."""

from __future__ import annotations

import ast
from collections.abc import Iterable


def imports_of(source: str, packages: Iterable[str]) -> list[tuple[int, str]]:
    """(line, name) of each import of these packages, or of a module or name of theirs, in a
    module's source: `import a.b` as `a.b`; `from a import b` as both `a` and `a.b`."""
    packages = list(packages)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [
            (node.lineno, name)
            for name in names
            if any(name == package or name.startswith(f"{package}.") for package in packages)
        ]
    return found
