"""Group commit at intake: deliveries arriving together share one transaction, a duplicate
inside a batch fails none of the others, a failing commit spools every delivery of its batch
(answered 503 only when the spool cannot be written either), and shutdown stores what is
waiting.

Each test holds intake's next transaction shut until every delivery posted has reached it, so
what shares a transaction does not depend on timing. Every test runs on SQLite and, when
CONJUNCTION_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy.exc
from aiohttp.test_utils import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.models import Delivery, Job
from testkit.memoryhost import MemoryHost
from testkit.payloads import fixture
from tests.conftest import post_github, runtime

PING = fixture("github/ping.json")


class Gated:
    """Sessions whose transactions wait until the gate opens."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.open = asyncio.Event()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        await self.open.wait()
        async with self.sessions.begin() as session:
            yield session


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, database_url: str
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = settings.model_copy(update={"database_url": database_url})
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    yield await aiohttp_client(app)


@pytest.fixture
def gated(client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Gated:
    intake = runtime(client).intake
    gate = Gated(intake.sessions)
    monkeypatch.setattr(intake, "sessions", gate)
    return gate


@contextlib.contextmanager
def statements(client: TestClient[Any, Any]) -> Iterator[list[str]]:
    """The SQL statements and commits the server makes meanwhile."""
    made: list[str] = []
    engine = runtime(client).database.sync_engine

    def executed(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        made.append(" ".join(sql.split()[:3]))

    def committed(_conn: Any) -> None:
        made.append("COMMIT")

    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    try:
        yield made
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine, "commit", committed)


async def post_together(
    client: TestClient[Any, Any], gate: Gated, deliveries: list[str]
) -> list[tuple[int, dict[str, Any]]]:
    """Post a ping for each delivery id at once, open the gate once all of them wait for
    intake, and return each answer (status, JSON)."""

    async def post(delivery: str) -> tuple[int, dict[str, Any]]:
        answer = await post_github(client, "ping", PING, delivery)
        return answer.status, await answer.json()

    posts = [asyncio.create_task(post(delivery)) for delivery in deliveries]
    await until(lambda: runtime(client).intake.waiting == len(deliveries))
    gate.open.set()
    return await asyncio.gather(*posts)


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition was never met")


async def stored(client: TestClient[Any, Any]) -> tuple[list[str], int]:
    """The delivery ids stored, and how many jobs are queued."""
    async with runtime(client).sessions() as session:
        ids = sorted(await session.scalars(select(Delivery.delivery_id)))
        jobs = await session.scalar(select(func.count()).select_from(Job))
    return ids, int(jobs or 0)


async def test_deliveries_arriving_together_share_one_transaction(
    client: TestClient[Any, Any], gated: Gated
) -> None:
    ids = [f"together-{n}" for n in range(20)]
    with statements(client) as made:
        answers = await post_together(client, gated, ids)
    assert answers == [(202, {"status": "accepted", "delivery": id_}) for id_ in ids]
    # the first delivery may start a transaction of its own before the others arrive
    assert made.count("COMMIT") <= 2, made
    assert sum(sql.startswith("INSERT INTO deliveries") for sql in made) <= 2, made
    assert await stored(client) == (sorted(ids), 20)


async def test_a_duplicate_inside_a_batch_fails_none_of_the_others(
    client: TestClient[Any, Any], gated: Gated
) -> None:
    gated.open.set()
    first = await post_github(client, "ping", PING, "seen-before")
    assert first.status == 202
    gated.open.clear()
    ids = ["new-1", "twice", "seen-before", "twice", "new-2"]
    answers = await post_together(client, gated, ids)
    statuses = {id_: [] for id_ in ids}  # type: dict[str, list[Any]]
    for id_, (status, body) in zip(ids, answers, strict=True):
        statuses[id_].append((status, body["status"]))
    assert statuses == {
        "new-1": [(202, "accepted")],
        "new-2": [(202, "accepted")],
        "seen-before": [(200, "duplicate")],
        "twice": [(202, "accepted"), (200, "duplicate")],
    }
    assert await stored(client) == (["new-1", "new-2", "seen-before", "twice"], 4)


@contextlib.contextmanager
def failing_commits(client: TestClient[Any, Any]) -> Iterator[None]:
    """The database refuses every commit, as one that lost its disk or connection would."""
    engine = runtime(client).database.sync_engine

    def refuse(_conn: Any) -> None:
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(engine, "commit", refuse)
    try:
        yield
    finally:
        event.remove(engine, "commit", refuse)


def spooled(client: TestClient[Any, Any]) -> list[str]:
    """The delivery ids in the spool."""
    spool = runtime(client).intake.spool
    assert spool is not None
    return sorted(spool.read(path)["delivery_id"] for path in spool.waiting(1000))


async def test_a_failing_commit_spools_its_batch_and_stores_it_once_the_database_answers(
    client: TestClient[Any, Any], gated: Gated
) -> None:
    ids = [f"spooled-{n}" for n in range(10)]
    with failing_commits(client):
        answers = await post_together(client, gated, ids)
        assert answers == [(202, {"status": "accepted", "delivery": id_}) for id_ in ids]
        assert spooled(client) == sorted(ids)
        assert await stored(client) == ([], 0)
        late = await post_github(client, "ping", PING, "while-spooling")
        assert late.status == 202
    await until_stored(client, sorted([*ids, "while-spooling"]))
    await until(lambda: spooled(client) == [])  # each file goes once its commit is done


async def test_a_batch_neither_the_database_nor_the_disk_takes_is_answered_503(
    aiohttp_client: Any, settings: Settings, database_url: str, tmp_path: Any
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    settings = settings.model_copy(
        update={"database_url": database_url, "spool_dir": tmp_path / "not-a-folder"}
    )
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    client = await aiohttp_client(app)
    with failing_commits(client):
        answer = await post_github(client, "ping", PING, "nowhere")
        assert answer.status == 503
        assert answer.headers["Retry-After"] == "10"
        assert await answer.json() == {"error": "the database is unavailable; retry later"}
    assert await stored(client) == ([], 0)


async def until_stored(client: TestClient[Any, Any], ids: list[str]) -> None:
    for _ in range(1000):
        if (await stored(client)) == (ids, len(ids)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"stored: {await stored(client)}")


async def test_a_delivery_the_database_refuses_fails_only_itself(
    client: TestClient[Any, Any], gated: Gated
) -> None:
    """An error that is not the database being unavailable is tried again one delivery at a
    time: the others of the batch are stored."""
    engine = runtime(client).database.sync_engine

    def refuse_poison(_conn: Any, _cursor: Any, _sql: str, parameters: Any, *_: Any) -> None:
        if "poison" in repr(parameters):
            raise sqlalchemy.exc.DataError("INSERT", {}, Exception("value refused"))

    event.listen(engine, "before_cursor_execute", refuse_poison)
    try:
        answers = await post_together(client, gated, ["good-1", "poison", "good-2"])
    finally:
        event.remove(engine, "before_cursor_execute", refuse_poison)
    assert [status for status, _ in answers] == [202, 500, 202]
    assert await stored(client) == (["good-1", "good-2"], 2)


async def test_shutdown_stores_the_deliveries_waiting_for_a_commit(
    client: TestClient[Any, Any], gated: Gated
) -> None:
    intake = runtime(client).intake
    posts = [asyncio.create_task(post_github(client, "ping", PING, f"late-{n}")) for n in range(5)]
    await until(lambda: intake.waiting == 5)
    closing = asyncio.create_task(intake.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    gated.open.set()
    await closing
    assert [answer.status for answer in await asyncio.gather(*posts)] == [202] * 5
    assert await stored(client) == ([f"late-{n}" for n in range(5)], 5)
