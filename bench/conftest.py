"""Benchmark fixtures: a private event loop to time coroutines with pytest-benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

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
