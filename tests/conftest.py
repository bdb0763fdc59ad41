"""Shared fixtures. A session-scoped ``redis-server`` on a free loopback port (no persistence);
each test gets its own key prefix so tests never see each other's data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from tests.redis_servers import start_redis_server

from bullflow.settings import RedisSettings


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start redis-server on 127.0.0.1:<free port>; yields its URL."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A unique prefix (also usable as a queue name) for one test's Redis keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_settings(redis_server: str) -> RedisSettings:
    return RedisSettings.from_url(redis_server)


@pytest.fixture
async def redis_client(redis_settings: RedisSettings) -> AsyncIterator[Redis]:
    """An asyncio redis-py client of the test server, closed after the test."""
    client = redis_settings.client()
    try:
        yield client
    finally:
        await client.aclose()
