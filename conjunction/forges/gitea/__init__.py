"""The Gitea and Forgejo adapter: `client` (the one HTTP client of the REST API /api/v1, paced
and retried), `host` (GiteaHost, a code host and an Actions runner), `joining` (the `gitea add`
command), `payloads` (the shape of each webhook).

Forgejo (Codeberg among them) answers the same API for everything used here; where the two
differ — how a dispatched run's id comes back, the Actions run webhooks — both are handled and
the module says so.
"""

from __future__ import annotations

from conjunction.config.settings import Settings
from conjunction.forges.driver import Driver


def configured(settings: Settings) -> bool:
    return settings.gitea_enabled


DRIVER = Driver(
    name="gitea",
    display_name="Gitea",
    configured=configured,
    server="conjunction.forges.gitea.server",
    command="Gitea and Forgejo repositories (Codeberg too)",
)
