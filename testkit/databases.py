"""The test PostgreSQL (`CONJUNCTION_TEST_POSTGRES_URL`): named, or the test skipped saying why;
emptied before a run."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from conjunction.db import async_url


def postgres_or_skip() -> str:
    url = os.environ.get("CONJUNCTION_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CONJUNCTION_REQUIRE_POSTGRES"):
        pytest.fail("CONJUNCTION_REQUIRE_POSTGRES is set but CONJUNCTION_TEST_POSTGRES_URL is not")
    pytest.skip("no PostgreSQL: set CONJUNCTION_TEST_POSTGRES_URL to run against one")


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
