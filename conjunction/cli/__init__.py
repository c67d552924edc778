"""The `conjunction` command (and `python app.py`): the server and the operator's commands.

One module a command group, each with `configure(parser)` (its arguments, and `run` as the
parser's default) and `run(settings, args)`; `conjunction` alone serves. Only the module of the
command given is imported, so `--version`, `--help` and `validate` start without loading the
server. Every command that needs the database opens it through `conjunction.bootstrap`, as the
server does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from conjunction import __version__, forges
from conjunction.config.settings import SettingsError, load_settings

# command -> its line in `conjunction --help`; conjunction/cli/<command>.py holds the rest. Each
# forge's command group (its driver's `command`, in its package's `command.py`) comes after these
# four.
COMMANDS = {
    "serve": "run the server (the default): settings from the environment or .env",
    "validate": "check .conjunction.yml files",
    "token": "project tokens for POST /api/v1/builds and /api/v1/claims",
    "jobs": "the job queue: list, retry or purge jobs",
}
OTHERS = {
    "project": "projects on any git host, read through git",
    "demo": "a simulated forge, CI and ecosystem of projects, on this machine",
}


def command_lines() -> dict[str, str]:
    """Every command and its line in `conjunction --help`, the forges' from `conjunction.forges`."""
    lines = {d.name: d.command for d in forges.DRIVERS if d.command is not None}
    return COMMANDS | lines | OTHERS


def _module(command: str) -> ModuleType:
    """The module of `command`: a forge's is its driver's `command_module`."""
    drivers = {d.name: d for d in forges.DRIVERS}
    name = drivers[command].command_module if command in drivers else f"conjunction.cli.{command}"
    return importlib.import_module(name)


def parser(prog: str = "conjunction", command: str | None = None) -> argparse.ArgumentParser:
    """The command line; the arguments of `command` (when given) in full."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Conjunction connects CI pipelines across repositories. Without a command "
        "it starts the server.",
    )
    parser.add_argument("--version", action="version", version=f"conjunction {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help in command_lines().items():
        subparser = commands.add_parser(name, help=help, description=help)
        if name == command:
            _module(name).configure(subparser)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "conjunction") -> int:
    """Run one command (the server without one); its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = parser(prog, command).parse_args(argv)
    module = _module(args.command or "serve")
    if args.command == "validate":  # reads files only: no settings needed
        return int(module.run(args))
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"conjunction: {exc}", file=sys.stderr)
        return 2
    return int(module.run(settings, args))
