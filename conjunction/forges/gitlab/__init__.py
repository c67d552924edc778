"""The GitLab adapter: `client` (the one python-gitlab client, paced and retried), `host`
(GitLabHost, a code host and a runner), `joining` (the `gitlab add` command), `payloads` (the
shape of each webhook)."""

from __future__ import annotations

from conjunction.config.settings import Settings
from conjunction.forges.driver import Driver


def configured(settings: Settings) -> bool:
    return settings.gitlab_enabled


DRIVER = Driver(
    name="gitlab",
    display_name="GitLab",
    configured=configured,
    server="conjunction.forges.gitlab.server",
    public_host="gitlab.com",
    command="GitLab projects",
)
