"""How far a fan-out has come: how many of its downstream pipelines were started, and when the
next batch goes out while pacing (GitHub's secondary limits, a rate-limit wait) holds the rest
back — said on the upstream's report and on the event page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.models import Event, utcnow
from conjunction.names import owner_of
from conjunction.queue import JobQueue
from conjunction.results import Result


@dataclass(frozen=True)
class Progress:
    started: int
    total: int
    next_batch: float | None = None  # seconds until the first postponed trigger is due

    def words(self) -> str:
        """`started 120 of 400, next batch in ~40 s`."""
        text = f"started {self.started} of {self.total}"
        if self.next_batch is not None:
            text += f", next batch in {wait(self.next_batch)}"
        return text


def wait(seconds: float) -> str:
    """`~40 s`, `~3 min`."""
    if seconds < 90:
        return f"~{max(math.ceil(seconds), 1)} s"
    return f"~{math.ceil(seconds / 60)} min"


def waiting(event: Event) -> bool:
    """A trigger whose pipeline was not started yet (and that is not settled either)."""
    return event.result is None and event.started_at is None


async def progress(session: AsyncSession, triggers: Sequence[Event]) -> Progress | None:
    """The progress of a fan-out while some of its triggers wait to be started; None once
    every one was (skipped ones aside)."""
    sent = [event for event in triggers if event.result != Result.SKIPPED]
    held = [event for event in sent if waiting(event)]
    if not held:
        return None
    due = await JobQueue.next_run_at(session, "trigger", {owner_of(e.project) for e in held})
    return Progress(
        started=len(sent) - len(held),
        total=len(sent),
        next_batch=(due - utcnow()).total_seconds() if due is not None else None,
    )
