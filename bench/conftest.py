"""Benchmark fixtures: a private event loop to time coroutines with pytest-benchmark, and the
tests' session redis-server (loopback, free port) and its process id (CPU per node from /proc)
for the distributed benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from tests.conftest import redis_server  # noqa: F401  (the session fixture, shared)

T = TypeVar("T")


@pytest.fixture
def run_async() -> Iterator[Callable[[Callable[[], Awaitable[T]]], T]]:
    loop = asyncio.new_event_loop()

    def run(factory: Callable[[], Awaitable[Any]]) -> Any:
        return loop.run_until_complete(factory())

    try:
        yield run
    finally:
        loop.close()


@pytest.fixture(scope="session")
def redis_pid(redis_server: str) -> int:  # noqa: F811  (redis_server: the imported session fixture)
    """The process id of the session's redis-server, whose CPU the distributed benchmarks count."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        return int(info["process_id"])
    finally:
        client.close()
