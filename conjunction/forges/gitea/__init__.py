"""The Gitea and Forgejo driver: `settings`, `client` (the one HTTP client of the REST API
/api/v1, paced and retried), `host` (GiteaHost, a code host and an Actions runner), `joining` and
`command` (`gitea add`), `payloads` (the shape of each webhook), `webhook`, `events` and `server`
(what the running service takes from it).

Forgejo (Codeberg among them) answers the same API for everything used here; where the two
differ — how a dispatched run's id comes back, the Actions run webhooks — both are handled and
the module says so.
"""

from __future__ import annotations

from conjunction.forges.driver import Driver
from conjunction.forges.gitea.settings import GiteaSettings

DRIVER = Driver(
    name="gitea",
    display_name="Gitea",
    package=__name__,
    settings=GiteaSettings,
    joined_by="Gitea (python app.py gitea add)",
    command="Gitea and Forgejo repositories (Codeberg too)",
)
