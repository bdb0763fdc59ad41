"""Worker heartbeats (``bullflow.fleet``) against the session redis-server: a heartbeat appears,
counts what its worker did, expires when its worker dies and is removed when it stops; the
BullMQ adapter and the durable workers heartbeat while they serve."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow import NodeContext, keys
from bullflow.adapter import BullMQAdapter
from bullflow.client import Client
from bullflow.durable import Workflow, WorkflowEntrypoint, WorkflowEvent, WorkflowStep, WorkflowWorkers
from bullflow.exceptions import SettingsError
from bullflow.fleet import WorkerHeartbeat, WorkerInfo, live_workers, new_worker_id
from bullflow.settings import DurableSettings


async def echo(ctx: NodeContext) -> Any:
    return ctx.params["value"]


async def double(ctx: NodeContext) -> Any:
    return ctx.input * 2


REGISTRY = {"echo": echo, "double": double}


class FleetTwoSteps(WorkflowEntrypoint):
    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await step.do("a", _one) + await step.do("b", _one)


async def _one() -> int:
    return 1


CHAIN = {
    "id": "chain",
    "nodes": [
        {"id": "a", "uses": "echo", "params": {"value": 1}},
        {"id": "b", "uses": "double"},
    ],
    "edges": [{"source": "a", "target": "b"}],
}


async def workers_of(redis: Redis, queue: str) -> list[WorkerInfo]:
    return [w for w in await live_workers(redis) if w.queue == queue]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {check}")
        await asyncio.sleep(0.05)


async def test_a_heartbeat_appears_counts_and_disappears_on_stop(
    redis_client: Redis, key_prefix: str
) -> None:
    done = 0
    heartbeat = WorkerHeartbeat(
        redis_client,
        kind="flow",
        queue=key_prefix,
        concurrency=3,
        uses=lambda: ["b", "a", "b"],
        processed=lambda: done,
        interval=0.1,
    )
    before = int(time.time() * 1000)
    heartbeat.start()
    (worker,) = await eventually(lambda: workers_of(redis_client, key_prefix))
    assert worker.id == heartbeat.worker_id
    assert worker.id.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert (worker.kind, worker.host, worker.pid) == ("flow", socket.gethostname(), os.getpid())
    assert (worker.concurrency, worker.uses, worker.processed) == (3, ["a", "b"], 0)
    assert before - 1000 <= worker.started_at <= worker.last_seen <= int(time.time() * 1000)
    ttl = await redis_client.pttl(keys.worker_key(worker.id))
    assert 0 < ttl <= 300
    assert await redis_client.zscore(keys.WORKERS_KEY, worker.id) is not None

    done = 7

    async def counted() -> bool:
        return [w.processed for w in await workers_of(redis_client, key_prefix)] == [7]

    await eventually(counted)
    await heartbeat.stop()
    assert await workers_of(redis_client, key_prefix) == []
    assert not await redis_client.exists(keys.worker_key(worker.id))
    assert await redis_client.zscore(keys.WORKERS_KEY, worker.id) is None
    await heartbeat.stop()  # a second stop does nothing


async def test_a_dead_worker_expires_and_leaves_the_index(redis_client: Redis, key_prefix: str) -> None:
    heartbeat = WorkerHeartbeat(redis_client, kind="durable", queue=key_prefix, concurrency=1, interval=0.1)
    await heartbeat.beat()  # one heartbeat, then silence: the worker "died"
    assert [w.id for w in await workers_of(redis_client, key_prefix)] == [heartbeat.worker_id]
    await asyncio.sleep(0.4)  # past the TTL of three intervals
    assert await workers_of(redis_client, key_prefix) == []
    assert await redis_client.zscore(keys.WORKERS_KEY, heartbeat.worker_id) is None


async def test_stale_and_unreadable_index_entries(redis_client: Redis, key_prefix: str) -> None:
    now = int(time.time() * 1000)
    old, hashless, broken = (f"{key_prefix}-{n}" for n in ("old", "hashless", "broken"))
    await redis_client.zadd(keys.WORKERS_KEY, {old: now - 3_600_000, hashless: now, broken: now})
    await redis_client.hset(keys.worker_key(broken), mapping={"id": broken, "queue": key_prefix})
    await redis_client.hset(keys.worker_key(old), mapping={"id": old})  # a left-over without expiry
    try:
        assert await workers_of(redis_client, key_prefix) == []
        assert await redis_client.zscore(keys.WORKERS_KEY, old) is None
        assert await redis_client.zscore(keys.WORKERS_KEY, hashless) is None
    finally:
        await redis_client.delete(keys.worker_key(broken), keys.worker_key(old))
        await redis_client.zrem(keys.WORKERS_KEY, broken)


def test_worker_info_json_is_camel_case_with_iso_times() -> None:
    info = WorkerInfo(
        id="h:1:abcdef",
        kind="flow",
        host="h",
        pid=1,
        queue="q",
        concurrency=2,
        started_at=1_700_000_000_123,
        last_seen=1_700_000_001_005,
        processed=4,
        uses=["echo"],
    )
    assert info.to_json() == {
        "id": "h:1:abcdef",
        "kind": "flow",
        "host": "h",
        "pid": 1,
        "queue": "q",
        "concurrency": 2,
        "startedAt": "2023-11-14T22:13:20.123Z",
        "lastSeen": "2023-11-14T22:13:21.005Z",
        "processed": 4,
        "uses": ["echo"],
    }


def test_worker_ids_and_bad_settings(redis_client: Redis) -> None:
    first, second = new_worker_id("h", 5), new_worker_id("h", 5)
    assert first.startswith("h:5:") and len(first) == len("h:5:") + 6 and first != second
    with pytest.raises(SettingsError, match="kind"):
        WorkerHeartbeat(redis_client, kind="api", queue="q", concurrency=1)
    with pytest.raises(SettingsError, match="interval"):
        WorkerHeartbeat(redis_client, kind="flow", queue="q", concurrency=1, interval=0)


async def test_the_adapter_heartbeats_and_counts_its_jobs(
    redis_server: str, redis_client: Redis, key_prefix: str
) -> None:
    adapter = BullMQAdapter(
        registry=REGISTRY,
        blueprints=[CHAIN],
        connection=redis_server,
        queue_name=key_prefix,
        concurrency=4,
        heartbeat_interval=0.1,
    )
    silent = BullMQAdapter(
        registry=REGISTRY, connection=redis_server, queue_name=key_prefix, heartbeat_interval=None
    )
    client = Client(blueprints=[CHAIN], connection=redis_server, queue_name=key_prefix)
    adapter.start()
    silent.start()
    try:
        (worker,) = await eventually(lambda: workers_of(redis_client, key_prefix))
        assert worker.kind == "flow" and worker.concurrency == 4
        assert {"echo", "double", "subflow"} <= set(worker.uses)  # with the built-ins
        handles = [await client.start("chain", {}) for _ in range(3)]
        for handle in handles:
            result = await handle.result(timeout=10)
            assert result.status == "completed", result
        total = adapter.jobs_processed + silent.jobs_processed
        assert total == 6

        async def counted() -> bool:
            return [w.processed for w in await workers_of(redis_client, key_prefix)] == [
                adapter.jobs_processed
            ]

        await eventually(counted)
    finally:
        await client.close()
        await silent.close(timeout=5)
        await adapter.close(timeout=5)
    assert await workers_of(redis_client, key_prefix) == []


async def test_durable_workers_heartbeat(redis_server: str, redis_client: Redis, key_prefix: str) -> None:
    settings = DurableSettings(prefix=key_prefix, queue_name=key_prefix)
    workers = WorkflowWorkers(
        redis_server,
        settings=settings,
        workflows=[FleetTwoSteps],
        concurrency=2,
        reconcile_interval=None,
        heartbeat_interval=0.1,
    )
    await workers.start()
    client = Workflow(FleetTwoSteps, redis_server, settings=settings)
    try:
        (worker,) = await eventually(lambda: workers_of(redis_client, key_prefix))
        assert (worker.kind, worker.concurrency, worker.uses) == ("durable", 2, ["FleetTwoSteps"])
        instance = await client.create(params={})
        assert await instance.result(timeout=10) == 2

        async def counted() -> bool:
            found = await workers_of(redis_client, key_prefix)
            return bool(found) and found[0].processed == workers.activations >= 1

        await eventually(counted)
    finally:
        await client.close()
        await workers.close()
    assert await workers_of(redis_client, key_prefix) == []
