"""Gitea and Forgejo events, processed from the job queue: each module translates one event
family (`push`: the config; `runs`: Actions runs and commit statuses; `pull_request`: pre-merge
runs; `issue_comment`: commands).

A new event family is a model in conjunction/forges/gitea/payloads.py and a handler here; until
then the intake answers it "ignored".
"""

from __future__ import annotations

from conjunction.forges.deliveries import Handler
from conjunction.forges.gitea.events import issue_comment, pull_request, push, runs

HANDLERS: dict[str, Handler] = {
    "push": push.on_push,
    "status": runs.on_status,
    "workflow_run": runs.on_workflow_run,
    "action_run": runs.on_action_run,
    "action_run_success": runs.on_action_run,
    "action_run_failure": runs.on_action_run,
    "action_run_recover": runs.on_action_run,
    "pull_request": pull_request.on_pull_request,
    "issue_comment": issue_comment.on_issue_comment,
}
