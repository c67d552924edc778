"""The GitHub driver: `settings` (the App's), `client` and `auth` (the GitHub App's clients),
`forge` (GitHubForge, a code host and a runner), `service` (the App as the server builds it),
`installations`, `poller` (upstreams no installation covers), `payloads` (the shape of each
webhook), `webhook`, `events` and `server` (what the running service takes from it). A repository
joins by installing the App: there is no command."""

from __future__ import annotations

from conjunction.forges.driver import Driver
from conjunction.forges.github.settings import GitHubSettings

DRIVER = Driver(
    name="github",
    display_name="GitHub",
    package=__name__,
    settings=GitHubSettings,
    joined_by="the GitHub App (install it on the repository)",
    public_host="github.com",
)
