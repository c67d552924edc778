"""`conjunction serve`'s own part: what it does once the app has started."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import aiohttp
import pytest

from conjunction.app import create_app
from conjunction.cli.serve import run_server
from conjunction.config.settings import Settings
from testkit.server_process import free_port


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # what the server froze is this test process's: given back to the collector


async def test_the_start_up_heap_is_frozen_before_the_first_request(
    settings: Settings, unfrozen: None
) -> None:
    """A full collection no longer walks what start-up made (about 60 ms of a stalled event
    loop each time, docs/performance.md)."""
    port = free_port()
    server = asyncio.create_task(run_server(create_app(settings), "127.0.0.1", port))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                        assert answer.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 50_000
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
