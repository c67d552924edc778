"""The GitHub adapter: `client` and `auth` (the GitHub App's clients), `forge` (GitHubForge, a
code host and a runner), `service` (the App as the server builds it), `installations`,
`poller` (upstreams no installation covers), `payloads` (the shape of each webhook). A
repository joins by installing the App: there is no command."""

from __future__ import annotations

from conjunction.config.settings import Settings
from conjunction.forges.driver import Driver


def configured(settings: Settings) -> bool:
    return settings.github_enabled


DRIVER = Driver(
    name="github",
    display_name="GitHub",
    configured=configured,
    server="conjunction.forges.github.server",
    public_host="github.com",
)
