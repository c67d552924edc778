"""`conjunction gitlab add GROUP/PROJECT`: join GitLab projects through the bot account."""

from __future__ import annotations

import argparse
import asyncio
import sys

from conjunction.adapters import Adapters
from conjunction.bootstrap import opened
from conjunction.config.settings import Settings
from conjunction.forges.gitlab import DRIVER
from conjunction.forges.gitlab.host import GitLabHost
from conjunction.forges.gitlab.joining import Joiner, add_projects
from conjunction.forges.gitlab.settings import GitLabSettings


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    join = actions.add_parser(
        "add",
        help="join a project, or every project of a group: check the bot's role, set up the "
        "webhook, index .conjunction.yml",
    )
    join.add_argument("path", help="GROUP/PROJECT or GROUP, e.g. acme/lib or acme")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(gitlab_add(settings, args.path))


async def gitlab_add(settings: Settings, path: str, *, host: GitLabHost | None = None) -> int:
    """Join GitLab projects through the bot account (GITLAB_TOKEN)."""
    gitlab = settings.forge(GitLabSettings)
    if not gitlab.enabled:
        print("conjunction: GitLab is not configured: set GITLAB_TOKEN", file=sys.stderr)
        return 2
    assert gitlab.webhook_secret  # a token without the secret is refused
    host = host or GitLabHost.from_settings(gitlab)
    path = path.strip("/").removeprefix(f"{gitlab.host}/")
    try:
        async with opened(settings) as base:
            joiner = Joiner(
                host,
                await base.engine(Adapters.of(host)),
                hook_url=f"{settings.public_url}{DRIVER.webhook_path}",
                secret=gitlab.webhook_secret,
            )
            return await add_projects(joiner, path)
    finally:
        host.client.close()
