"""Whose a webhook delivery is, read from its envelope when it arrives, so that the queue lets
owners take turns at their deliveries' jobs (`conjunction.queue.fair_order`).

GitHub: the App's installation the delivery is for; GitLab, Gitea and Forgejo: the top-level
owner (group, organization, user) of the project it names; the forge's host when it names none.
"""

from __future__ import annotations

from pydantic import BaseModel

from conjunction.names import owner_of


def delivery_owner(host: str, payload: BaseModel) -> str:
    """The queue's key for a delivery's job, from its checked payload (a model of
    `conjunction.forges.*.payloads`): `github.com/installation/42`, `gitlab.com/group`, or the
    host."""
    installation = getattr(payload, "installation", None)
    if installation is not None:
        return f"{host}/installation/{installation.id}"
    path = _project_path(payload)
    return host if path is None else owner_of(f"{host}/{path}")


def _project_path(payload: BaseModel) -> str | None:
    """The path of the project a payload names: GitLab's `project` (or a system hook's own
    path), Gitea's `repository`, Forgejo's run's `repository`."""
    project = getattr(payload, "project", None)
    path = getattr(project, "path_with_namespace", None) or getattr(
        payload, "path_with_namespace", None
    )
    if path:
        return str(path)
    for holder in (payload, getattr(payload, "run", None)):
        repository = getattr(holder, "repository", None)
        if repository is not None:
            return str(repository.full_name)
    return None
