"""The GitLab adapter: `client` (the one python-gitlab client, paced and retried), `host`
(GitLabHost, a code host and a runner), `joining` (the `gitlab add` command), `payloads` (the
shape of each webhook)."""

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
