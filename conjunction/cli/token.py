"""`conjunction token create|list|revoke`: project tokens for `POST /api/v1/builds` and
`POST /api/v1/claims`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from conjunction.bootstrap import opened
from conjunction.cli.output import print_table
from conjunction.config.settings import Settings
from conjunction.models import ProjectToken
from conjunction.names import project_key, project_name
from conjunction.tokens import (
    TokenError,
    create_project_token,
    default_token_name,
    list_project_tokens,
    revoke_project_token,
)


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a token (shown once)")
    create.add_argument("project", help="e.g. github.com/acme/lib")
    create.add_argument("--name", help="what the token is for, e.g. jenkins (default: token-N)")
    listing = actions.add_parser("list", help="the tokens of a project (or of every project)")
    listing.add_argument("project", nargs="?", help="e.g. github.com/acme/lib")
    revoke = actions.add_parser("revoke", help="revoke one token; the others stay valid")
    revoke.add_argument("project", help="e.g. github.com/acme/lib")
    revoke.add_argument("token", metavar="NAME-OR-PREFIX", help="its name, or its first characters")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(manage_tokens(settings, args))


async def manage_tokens(settings: Settings, args: argparse.Namespace) -> int:
    try:
        name = project_name(args.project) if args.project else None
    except ValueError as exc:
        print(f"conjunction: {args.project!r} is {exc}", file=sys.stderr)
        return 2
    project = project_key(name) if name else None
    try:
        async with opened(settings) as base, base.sessions.begin() as session:
            if args.action == "create":
                assert project is not None
                token_name = args.name or await default_token_name(session, project)
                print(await create_project_token(session, project, token_name))
                print(
                    f"Keep it secret: token {token_name} reports builds of {name} and is shown "
                    "only once."
                )
            elif args.action == "list":
                list_tokens(await list_project_tokens(session, project), every=project is None)
            else:
                assert project is not None
                row = await revoke_project_token(session, project, args.token)
                print(f"revoked token {row.name} ({row.prefix}…) of {name}")
    except TokenError as exc:
        print(f"conjunction: {exc}", file=sys.stderr)
        return 1
    return 0


def list_tokens(rows: list[ProjectToken], *, every: bool) -> None:
    if not rows:
        print("no tokens")
        return
    header = ["name", "token", "created", "last used", "state"]
    table = []
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        cells = [row.name, f"{row.prefix}…", f"{row.created_at:%Y-%m-%d %H:%M}", used, state]
        table.append([row.project, *cells] if every else cells)
    print_table(["project", *header] if every else header, table)
