"""GitLab events, processed from the job queue: each module translates one event family.

GitLab sends one `X-Gitlab-Event` per family; a System Hook (set up by an instance admin) carries
pushes and project changes of every project on the instance in one family.
"""

from __future__ import annotations

from conjunction.forges.deliveries import Handler
from conjunction.forges.gitlab.events import merge_request, note, pipeline, push, system

HANDLERS: dict[str, Handler] = {
    "Merge Request Hook": merge_request.on_merge_request,
    "Note Hook": note.on_note,
    "Pipeline Hook": pipeline.on_pipeline,
    "Push Hook": push.on_push,
    "System Hook": system.on_system_hook,
}
