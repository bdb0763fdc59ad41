"""Small helpers of the durable behaviour tests: polling, side-effect counters, step records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from bullflow import keys


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns a truthy value (returned); fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await asyncio.sleep(every)


async def wait_status(instance: Any, *statuses: str, timeout: float = 5.0) -> str:
    """Wait until the instance's status is one of ``statuses``; returns it."""

    async def check() -> str | None:
        status = (await instance.status()).status
        return status if status in statuses else None

    return str(await eventually(check, timeout))


async def status_is(instance: Any, wanted: str) -> bool:
    return (await instance.status()).status == wanted


async def counter(redis: Redis, params: dict[str, Any], name: str) -> int:
    """How often the test workflows' side effect ``name`` ran."""
    return int(await redis.get(f"{params['counter']}:{name}") or 0)


async def recorded(redis: Redis, params: dict[str, Any], name: str) -> list[str]:
    """The values the test workflows pushed with ``record_time(params, name, ...)``."""
    return [v.decode() for v in await redis.lrange(f"{params['counter']}:{name}", 0, -1)]


async def step_records(redis: Redis, instance_id: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The instance's step records (steps hash), decoded."""
    raw = await redis.hgetall(keys.instance_keys(instance_id, prefix).steps)
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}
