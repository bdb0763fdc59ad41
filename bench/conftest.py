"""Benchmark fixtures: a private event loop to time coroutines with pytest-benchmark, and the
tests' session redis-server (loopback, free port) for the distributed benchmarks."""

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
