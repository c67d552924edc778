"""`conjunction gitea add OWNER/REPO`: join Gitea or Forgejo repositories through the bot."""

from __future__ import annotations

import argparse
import asyncio
import sys

from conjunction.adapters import Adapters
from conjunction.bootstrap import opened
from conjunction.config.settings import Settings
from conjunction.forges.gitea import DRIVER
from conjunction.forges.gitea.host import GiteaHost
from conjunction.forges.gitea.joining import Joiner, add_repositories
from conjunction.forges.gitea.settings import GiteaSettings


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    join = actions.add_parser(
        "add",
        help="join a repository, or every repository of an organization or user: set up the "
        "webhook, index .conjunction.yml",
    )
    join.add_argument("path", help="OWNER/REPO or OWNER, e.g. acme/lib or acme")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(gitea_add(settings, args.path))


async def gitea_add(settings: Settings, path: str, *, host: GiteaHost | None = None) -> int:
    """Join Gitea or Forgejo repositories through the bot account (GITEA_TOKEN)."""
    gitea = settings.forge(GiteaSettings)
    if not gitea.enabled:
        print(
            "conjunction: Gitea is not configured: set GITEA_URL, GITEA_TOKEN and "
            "GITEA_WEBHOOK_SECRET",
            file=sys.stderr,
        )
        return 2
    assert gitea.webhook_secret
    host = host or GiteaHost.from_settings(gitea)
    path = path.strip("/").removeprefix(f"{host.host}/")
    try:
        async with opened(settings) as base:
            joiner = Joiner(
                host,
                await base.engine(Adapters.of(host)),
                hook_url=f"{settings.public_url}{DRIVER.webhook_path}",
                secret=gitea.webhook_secret,
            )
            return await add_repositories(joiner, path)
    finally:
        await host.client.close()
