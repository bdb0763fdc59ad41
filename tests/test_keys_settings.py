"""The wire contract's key formats, and Redis settings."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bullflow import keys
from bullflow.exceptions import SettingsError
from bullflow.settings import RedisSettings


def test_flowcraft_key_formats() -> None:
    assert keys.state_key("run-1") == "workflow:state:run-1"
    assert keys.status_key("run-1") == "workflow:status:run-1"
    assert keys.job_id("run-1", "node-A") == "run-1_node-A"
    assert (keys.DEFAULT_QUEUE, keys.EXECUTE_NODE_JOB) == ("flowcraft-queue", "executeNode")
    assert keys.queue_key_prefix() == "bull:flowcraft-queue:"
    assert keys.graph_key("ab" * 32) == "bullflow:graph:" + "ab" * 32


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", RedisSettings(host="localhost")),
        ("redis://127.0.0.1:6380/2", RedisSettings(port=6380, db=2)),
        (
            "rediss://user:p%40ss@cache.internal:6390/1",
            RedisSettings(host="cache.internal", port=6390, db=1, username="user", password="p@ss", ssl=True),
        ),
        ("redis://:secret@h", RedisSettings(host="h", password="secret")),
    ],
)
def test_from_url(url: str, expected: RedisSettings) -> None:
    assert RedisSettings.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost", "the scheme must be redis:// or rediss://"),
        ("redis://localhost/x", "the database must be a number"),
        ("redis://localhost:notaport", "invalid Redis URL"),
    ],
)
def test_bad_urls(url: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        RedisSettings.from_url(url)


def test_passwords_are_never_shown() -> None:
    settings = RedisSettings.from_url("rediss://user:hunter2@h:1/0")
    assert "hunter2" not in repr(settings)
    assert settings.url() == "rediss://user:***@h:1/0"
    with pytest.raises(SettingsError) as info:
        RedisSettings.from_url("redis://u:hunter2@h/notadb")
    assert "hunter2" not in str(info.value)


def test_no_client_side_read_timeout_by_default() -> None:
    assert RedisSettings().redis_kwargs()["socket_timeout"] is None


async def test_client_talks_to_the_server(redis_client: Redis) -> None:
    assert await redis_client.ping() is True
