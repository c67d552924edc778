"""The `conjunction` command (and `python app.py`): the server and the operator's commands.

One module a command group, each with `add_parser` and `run`; `conjunction` alone serves.
Every command that needs the database opens it through `bot.bootstrap`, as the server does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot import __version__
from cli import demo, gitea, gitlab, jobs, project, serve, token, validate
from config.settings import SettingsError, load_settings

GROUPS = (validate, token, jobs, gitlab, gitea, project, demo, serve)


def parser(prog: str = "conjunction") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Conjunction connects CI pipelines across repositories. Without a command "
        "it starts the server.",
    )
    parser.add_argument("--version", action="version", version=f"conjunction {__version__}")
    commands = parser.add_subparsers(dest="command")
    for group in GROUPS:
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "conjunction") -> int:
    """Run one command (the server without one); its exit code."""
    args = parser(prog).parse_args(argv)
    if args.command == "validate":  # reads files only: no settings needed
        return validate.run(args)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"conjunction: {exc}", file=sys.stderr)
        return 2
    command = args.run if args.command else serve.run
    result: int = command(settings, args)
    return result
