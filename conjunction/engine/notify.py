"""Notifications when a pair changes state (`notify:`): which channels are told, and the jobs
that tell them — one per channel, so that a channel that fails is retried alone."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from conjunction.config.repo_config import Notify
from conjunction.engine.context import Context, config_of
from conjunction.engine.reports import compare_url
from conjunction.models import Event, Project
from conjunction.names import project_key
from conjunction.notify.message import STATES, Message
from conjunction.queue import JobQueue
from conjunction.results import Verdict

log = logging.getLogger(__name__)


def channels_for(
    state: str,
    downstream: tuple[str, Sequence[Notify]],
    upstream: tuple[str, Sequence[Notify]] | None,
) -> list[tuple[str, Notify]]:
    """The channels told of a pair's new state: the downstream's, and — when the upstream may
    hear of this downstream at all (it requires it, and it is not a private one named on a
    public upstream) — the upstream's; each only for the states in its `on:`."""
    told = [(downstream[0], channel) for channel in downstream[1] if state in channel.on]
    if upstream is not None:
        told += [(upstream[0], channel) for channel in upstream[1] if state in channel.on]
    return told


async def notify(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: queue one `notify_send` job per channel told of this result's new state, once."""
    async with ctx.sessions.begin() as session:
        event = await session.get(Event, payload["event_id"], with_for_update=True)
        if event is None or event.parent_id is None or event.notified:
            return
        state = STATES.get(Verdict(event.change)) if event.change else None
        if state is None:
            return  # the pair's state did not change (a pass, still failing, …): none is told
        parent = await session.get(Event, event.parent_id)
        downstream = await session.get(Project, project_key(event.project))
        upstream = await session.get(Project, project_key(event.upstream or ""))
        if parent is None or downstream is None:
            return
        hears = (
            upstream is not None
            and config_of(upstream).report.is_required(downstream.name, upstream.name)
            and not (downstream.private and not upstream.private)
        )
        channels = channels_for(
            state,
            (downstream.name, config_of(downstream).notify),
            (upstream.name, config_of(upstream).notify) if upstream is not None and hears else None,
        )
        changes = event.changes or {}
        message = Message(
            state=state,
            verdict=str(event.change),
            upstream=parent.project,
            upstream_sha=parent.sha,
            downstream=event.project,
            downstream_sha=event.sha,
            event_id=event.id,
            event_url=ctx.event_url(event.id),
            run_url=event.url,
            compare_url=await compare_url(ctx, session, parent, event),
            culprit=changes.get("culprit"),
            hint=event.hint,
        )
        for index, (project, channel) in enumerate(channels):
            await JobQueue.enqueue(
                session,
                "notify_send",
                {
                    "project": project,
                    "channel": channel.model_dump(mode="json"),
                    "message": message.as_dict(),
                },
                dedupe_key=f"notify:{event.id}:{project_key(project)}:{index}",
            )
        event.notified = True
    log.info("%s: %d notification(s)", state, len(channels), extra={"event_id": event.id})


async def send(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: deliver one notification on one channel (retried by the queue when it fails)."""
    channel = Notify.model_validate(payload["channel"])
    await ctx.notifier.send(payload["project"], channel, Message(**payload["message"]))
