"""The GitLab driver: `settings`, `client` (the one python-gitlab client, paced and retried),
`host` (GitLabHost, a code host and a runner), `joining` and `command` (`gitlab add`), `payloads`
(the shape of each webhook), `webhook`, `events` and `server` (what the running service takes
from it)."""

from __future__ import annotations

from conjunction.forges.driver import Driver
from conjunction.forges.gitlab.settings import GitLabSettings

DRIVER = Driver(
    name="gitlab",
    display_name="GitLab",
    package=__name__,
    settings=GitLabSettings,
    joined_by="GitLab (python app.py gitlab add)",
    public_host="gitlab.com",
    command="GitLab projects",
)
