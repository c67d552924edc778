"""Group commit: callers hand items to one task that handles them in batches, one transaction
each, and each caller waits for its own item's outcome.

The items that arrive while a batch is being handled form the next batch, so batches grow with
the load by themselves, with no timer: an item never waits for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Items handled by `handle` in batches of at most `max_batch`, one batch at a time.

    `handle` returns one outcome per item, in order: its result, or an exception for that item
    alone. When `handle` raises, every item of the batch gets the error.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int,
        name: str,
    ) -> None:
        self.handle = handle
        self.max_batch = max_batch
        self.name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._handling = 0
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The item's result once its batch is handled; raises its batch's or its own error."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, answer))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
        return await answer

    @property
    def waiting(self) -> int:
        """Items handed over and not answered yet."""
        return len(self._pending) + self._handling

    async def close(self) -> None:
        """Wait until every item handed over is handled."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._handling = len(batch)
                await self._handle(batch)
        finally:
            self._task = None
            self._handling = 0

    async def _handle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes: Sequence[R | BaseException] = await self.handle([item for item, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, answer), outcome in zip(batch, outcomes, strict=True):
            if answer.done():  # its caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)
