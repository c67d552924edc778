"""The Gitea and Forgejo adapter: `client` (the one HTTP client of the REST API /api/v1, paced
and retried), `host` (GiteaHost, a code host and an Actions runner), `joining` (the `gitea add`
command), `payloads` (the shape of each webhook).

Forgejo (Codeberg among them) answers the same API for everything used here; where the two
differ — how a dispatched run's id comes back, the Actions run webhooks — both are handled and
the module says so.
"""
