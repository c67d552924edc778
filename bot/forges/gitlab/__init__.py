"""The GitLab adapter: `client` (the one python-gitlab client, paced and retried), `host`
(GitLabHost, a code host and a runner), `joining` (the `gitlab add` command), `payloads` (the
shape of each webhook)."""

from __future__ import annotations

from bot.forges.driver import Driver
from config.settings import Settings


def configured(settings: Settings) -> bool:
    return settings.gitlab_enabled


DRIVER = Driver(
    name="gitlab",
    display_name="GitLab",
    configured=configured,
    server="handlers.gitlab.server",
    public_host="gitlab.com",
    command="GitLab projects",
)
