"""The GitLab adapter: `client` (the one python-gitlab client, paced and retried), `host`
(GitLabHost, a code host and a runner), `joining` (the `gitlab add` command), `payloads` (the
shape of each webhook)."""
