"""Spec §5.9 group 10: a custom key prefix and queue prefix reach every API, every key of an
instance is in one Redis Cluster hash slot, and the whole engine (BullMQ queue with a hash-tag
prefix, every durable Lua script) runs on a real cluster-mode ``redis-server``, which refuses
any script that touches keys of two slots (CROSSSLOT)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.crc import key_slot
from tests.redis_servers import start_redis_server

from bullflow import keys
from bullflow.durable import (
    DurableReconciler,
    InstanceStatusError,
    Workflow,
    WorkflowTerminatedError,
    WorkflowWorkers,
)
from bullflow.settings import DurableSettings

from .durable_helpers import eventually, status_is
from .workflows import SleepThenStep, SlowSteps, WaitThenSideEffect

WORKFLOWS = [WaitThenSideEffect, SleepThenStep, SlowSteps]


def slots_of(instance_id: str, prefix: str) -> set[int]:
    k = keys.instance_keys(instance_id, prefix)
    return {key_slot(key.encode()) for key in asdict(k).values()}


async def scan(redis_client: Redis, pattern: str) -> list[str]:
    return [key.decode() async for key in redis_client.scan_iter(match=pattern, count=1000)]


async def exercise_every_api(url: str, settings: DurableSettings, counter: str) -> dict[str, str]:
    """create / create_batch / get / status / pause / send_event / resume / result / logs /
    terminate / restart on instances of ``settings``; returns the ids used, by role."""
    params = {"redis": url, "counter": counter}
    workers = WorkflowWorkers(
        url, settings=settings, workflows=WORKFLOWS, reconcile_interval=None, concurrency=4
    )
    await workers.start()
    waits = Workflow(WaitThenSideEffect, url, settings=settings)
    sleeps = Workflow(SleepThenStep, url, settings=settings)
    slow = Workflow(SlowSteps, url, settings=settings)
    try:
        # create, status, pause (evicted), send_event, resume, result, logs
        a = await waits.create(id="inst-a", params={**params, "side_seconds": 0})
        await eventually(lambda: status_is(a, "waiting"))
        assert await a.pause() == "paused"
        assert await a.send_event("approve", "ok-a") is True
        assert await a.resume() == "queued"
        assert await a.result(timeout=10) == {"approved": "ok-a", "n": 1}
        events = [e.event for e in await a.logs()]
        assert events[0] == "WORKFLOW_QUEUED" and events[-1] == "WORKFLOW_SUCCESS"
        assert "WORKFLOW_PAUSED" in events and "WORKFLOW_RESUMED" in events

        # get, restart of a finished instance, event buffered before the wait
        again = await waits.get("inst-a")
        await again.restart()
        await again.send_event("approve", "ok-again")  # delivered, or buffered for the wait
        assert await again.result(timeout=10) == {"approved": "ok-again", "n": 2}

        # a timer that suspends the instance and a delayed wake-up job
        (b,) = await sleeps.create_batch([{"id": "inst-b", "params": {**params, "sleep": 0.5}}])
        assert isinstance(await b.result(timeout=10), float)
        assert (await b.status()).status == "complete"

        # terminate mid-step, then the finished instance refuses it
        c = await slow.create(id="inst-c", params={**params, "steps": 2, "seconds": 2.0})
        await eventually(lambda: status_is(c, "running"))
        await asyncio.sleep(0.2)
        await c.terminate()
        with pytest.raises(WorkflowTerminatedError):
            await c.result(timeout=5)
        with pytest.raises(InstanceStatusError):
            await c.terminate()
        assert (await c.status()).status == "terminated"

        # the reconciler on these settings (its scripts and index)
        stats = await DurableReconciler(waits.store).run_once(grace_seconds=0)
        assert stats.requeued == 0
        return {"a": a.id, "b": b.id, "c": c.id}
    finally:
        for client in (waits, sleeps, slow):
            await client.close()
        await workers.close(force=True)


async def test_custom_prefix_reaches_every_api_and_keys_share_a_slot(
    redis_server: str, key_prefix: str, redis_client: Redis
) -> None:
    prefix = f"custom-x-{key_prefix}"
    queue_prefix = f"cq-{key_prefix}"
    settings = DurableSettings(
        prefix=prefix,
        queue_name=key_prefix,
        queue_prefix=queue_prefix,
        lease_ms=2000,
        inline_threshold=0.2,
        job_lock_ms=2000,
        stalled_interval_ms=1000,
        reconcile_grace_seconds=0.5,
        retention_seconds=3600,
    )
    ids = await exercise_every_api(redis_server, settings, f"{key_prefix}:count")
    for instance_id in ids.values():
        assert len(slots_of(instance_id, prefix)) == 1
        stored = await scan(redis_client, f"*{{{instance_id}}}*")
        assert stored, instance_id
        assert all(key.startswith(f"{prefix}:wf:{{{instance_id}}}") for key in stored), stored
        assert {key_slot(key.encode()) for key in stored} == slots_of(instance_id, prefix)
    # nothing under the default prefixes
    assert await scan(redis_client, f"{keys.DEFAULT_DURABLE_PREFIX}:wf:{{inst-*") == []
    assert await scan(redis_client, f"bull:{key_prefix}:*") == []
    assert await scan(redis_client, f"{queue_prefix}:{key_prefix}:*")  # the queue's own keys
    assert await redis_client.exists(keys.active_index_key(prefix)) in (0, 1)


def test_instance_keys_share_one_slot_for_any_id() -> None:
    for instance_id in ("a", "wf_0123456789abcdef", "order-17", "x" * 100, "_under_score"):
        for prefix in ("bullflow", "custom-x", "{other}"):
            assert len(slots_of(instance_id, prefix)) == 1
            if "{" not in prefix:  # a hash tag in the prefix would win: every instance in its slot
                assert slots_of(instance_id, prefix) == {key_slot(f"{{{instance_id}}}".encode())}


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[str]:
    """A one-node Redis Cluster (all 16384 slots) on a free port; yields a plain redis URL."""
    server = start_redis_server(
        tmp_path, "--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "nodes.conf")
    )
    port = server.port
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + 15
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    pytest.fail("the one-node cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        finally:
            client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


async def test_engine_runs_on_a_real_cluster_mode_node(cluster_node: str, key_prefix: str) -> None:
    cluster = Redis.from_url(cluster_node)
    try:
        # the node enforces slots: a script over keys of two slots is refused
        with pytest.raises(redis.exceptions.ClusterCrossSlotError):
            await cluster.eval("return redis.call('GET', KEYS[1])", 2, "{a}x", "{b}y")
        settings = DurableSettings(
            prefix=key_prefix,
            queue_name=key_prefix,
            queue_prefix="{bullflow}",
            lease_ms=2000,
            inline_threshold=0.2,
            job_lock_ms=2000,
            stalled_interval_ms=1000,
            reconcile_grace_seconds=0.5,
            retention_seconds=3600,
        )
        ids = await exercise_every_api(cluster_node, settings, f"{key_prefix}:count")
        for instance_id in ids.values():
            stored = await scan(cluster, f"*{{{instance_id}}}*")
            assert stored and {key_slot(key.encode()) for key in stored} == slots_of(instance_id, key_prefix)
        queue_keys = await scan(cluster, f"{{bullflow}}:{key_prefix}:*")
        assert queue_keys and {key_slot(key.encode()) for key in queue_keys} == {key_slot(b"{bullflow}")}
    finally:
        await cluster.aclose()
