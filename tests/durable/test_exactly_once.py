"""Spec §5.9 group 3 (E3): an event delivered while an activation still runs, duplicate
activation jobs, BullMQ stall re-delivery after ``kill -9`` of a worker process: every
side-effecting step runs once (a killed attempt is counted and retried exactly once)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import orjson
from redis.asyncio import Redis

from bullflow.durable import DurableStore
from bullflow.settings import DurableSettings, RedisSettings

from .durable_helpers import counter, eventually
from .workflows import BusyWhileWaiting, CountedSteps, RetryBesideWait, SlowSteps, WaitThenSideEffect


async def step_record(redis: Redis, store: DurableStore, instance_id: str, key: str) -> dict[str, Any] | None:
    raw = await redis.hget(store.keys(instance_id).steps, key)
    return orjson.loads(raw) if raw is not None else None


async def test_event_while_activation_runs_concurrent_step(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """The wait registers while a slow sibling step still runs; the event arrives while the runner
    holds the lease: it is not enqueued again, the runner replays, every step runs once."""
    await start_workers(workflows=[BusyWhileWaiting], concurrency=4)
    await start_workers(workflows=[BusyWhileWaiting], concurrency=4)  # a second worker that could double-run
    client = workflow(BusyWhileWaiting)
    instance = await client.create(params={**params, "busy_seconds": 1.0})
    k = client.store.keys(instance.id)
    await eventually(lambda: redis_client.hget(k.waiters, "go"))
    assert await counter(redis_client, params, "busy") == 1
    assert (await instance.status()).status == "running"
    seq_before = int(await redis_client.hget(k.instance, "seq"))
    assert await instance.send_event("go", {"ok": 1}) is True
    # the runner holds the lease: no new activation job, the holder replays instead
    assert int(await redis_client.hget(k.instance, "seq")) == seq_before
    result = await instance.result(timeout=15)
    assert result == {"busy": "busy", "event": {"ok": 1}, "n": 1}
    assert await counter(redis_client, params, "busy") == 1
    assert await counter(redis_client, params, "side") == 1
    events = [e.event for e in await instance.logs()]
    assert events.count("STEP_START") == 2
    assert events.count("WORKFLOW_SUCCESS") == 1


async def test_event_right_after_wait_registers_runs_side_effect_once(
    start_workers: Any, workflow: Any, redis_server: str, key_prefix: str, redis_client: Redis
) -> None:
    """E3 as probed: the event arrives right after the wait registers (the runner may still be
    suspending); duplicate activation jobs are added by hand on top; the side step runs once."""
    await start_workers(workflows=[WaitThenSideEffect], concurrency=8)
    await start_workers(workflows=[WaitThenSideEffect], concurrency=8)
    client = workflow(WaitThenSideEffect)
    store = client.store
    runs = []
    for i in range(6):
        p = {"redis": redis_server, "counter": f"{key_prefix}:c{i}", "side_seconds": 0.3}
        runs.append((p, await client.create(params=p)))

    async def deliver(p: dict[str, Any], instance: Any) -> None:
        k = store.keys(instance.id)
        await eventually(lambda: redis_client.hget(k.waiters, "approve"), every=0.005)
        assert await instance.send_event("approve", p["counter"]) is True
        # duplicate activations of the same instance: new sequence numbers and foreign job ids
        for extra in (1000, 1001):
            await store.enqueue(instance.id, "", extra)
        await store.queue.add(
            "durable-run",
            {"instanceId": instance.id},
            {"jobId": f"dup-{uuid.uuid4().hex}", "removeOnComplete": True},
        )

    await asyncio.gather(*(deliver(p, instance) for p, instance in runs))
    results = await asyncio.gather(*(instance.result(timeout=20) for _, instance in runs))
    for (p, _), result in zip(runs, results, strict=True):
        assert result == {"approved": p["counter"], "n": 1}
        assert await counter(redis_client, p, "side") == 1


async def test_duplicate_activation_jobs_while_running(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """Extra ``durable-run`` jobs for an instance whose runner is mid-step find the lease held:
    no step runs twice, the instance completes once."""
    await start_workers(workflows=[SlowSteps], concurrency=4)
    await start_workers(workflows=[SlowSteps], concurrency=4)
    client = workflow(SlowSteps)
    instance = await client.create(params={**params, "steps": 3, "seconds": 0.4})
    await eventually(lambda: counter(redis_client, params, "s0"))
    for extra in range(100, 104):
        await client.store.enqueue(instance.id, "", extra)
    await client.store.queue.add(
        "durable-run", {"instanceId": instance.id}, {"jobId": f"dup-{uuid.uuid4().hex}"}
    )
    assert await instance.result(timeout=15) == [0, 1, 2]
    for i in range(3):
        assert await counter(redis_client, params, f"s{i}") == 1
    events = [e.event for e in await instance.logs()]
    assert events.count("STEP_START") == 3
    assert "ATTEMPT_START" not in events
    assert events.count("WORKFLOW_SUCCESS") == 1
    # the duplicates were turned away by the lease (or found it finished): one activation ran
    assert int(await redis_client.hget(client.store.keys(instance.id).instance, "activations")) == 1


async def test_kill_9_worker_process_mid_step_retries_the_step_once(
    spawn_durable_worker: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """A worker process dies (SIGKILL) inside step s1; the second process gets the stalled job
    from BullMQ, counts the lost attempt and retries s1 once; s0 and s2 run once."""
    workers = [spawn_durable_worker(concurrency=2), spawn_durable_worker(concurrency=2)]
    client = workflow(SlowSteps)
    instance = await client.create(params={**params, "steps": 3, "seconds": 0.2, "kill_in_step": 1})
    assert await instance.result(timeout=30) == [0, 1, 2]
    dead = [w for w in workers if w.proc.poll() is not None]
    assert len(dead) == 1 and dead[0].proc.returncode == -9
    assert await counter(redis_client, params, "s0") == 1
    assert await counter(redis_client, params, "s1") == 2  # once killed, once retried
    assert await counter(redis_client, params, "s2") == 1
    assert await counter(redis_client, params, "killed") == 2
    rec = await step_record(redis_client, client.store, instance.id, "do:s1#1")
    assert rec is not None and rec["s"] == "ok" and rec["a"] == 2
    for key in ("do:s0#1", "do:s2#1"):
        other = await step_record(redis_client, client.store, instance.id, key)
        assert other is not None and other["s"] == "ok" and other["a"] == 1
    logs = await instance.logs()
    attempts = [e for e in logs if e.event == "ATTEMPT_START"]
    assert [(e.step, e.detail) for e in attempts] == [("do:s1#1", "2")]
    assert [e.event for e in logs].count("WORKFLOW_SUCCESS") == 1


async def test_two_worker_processes_fifty_instances_each_step_once(
    spawn_durable_worker: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    spawn_durable_worker(concurrency=10)
    spawn_durable_worker(concurrency=10)
    client = workflow(CountedSteps)
    instances = []
    for start in (0, 25):
        instances += await client.create_batch([{"params": params} for _ in range(start, start + 25)])
    results = await asyncio.gather(*(instance.result(timeout=30) for instance in instances))
    assert results == [3] * 50
    names = [f"{params['counter']}:{instance.id}:{step}" for instance in instances for step in "abc"]
    counts = await redis_client.mget(names)
    assert [int(c or 0) for c in counts] == [1] * 150
    for instance in instances[:5]:
        events = [e.event for e in await instance.logs()]
        assert events.count("STEP_START") == 3 and "ATTEMPT_START" not in events


async def test_stall_redelivery_is_fenced_by_the_lease(
    redis_server: str,
    durable_settings: DurableSettings,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
) -> None:
    """A second activation of the same instance started directly (as a stall re-delivery would)
    while a runner is mid-step is turned away with LEASE_HELD and marks the instance pending."""
    from bullflow.durable.runner import Runner

    store = DurableStore(RedisSettings.from_url(redis_server), durable_settings)
    try:
        runner_a = Runner(store, {"SlowSteps": SlowSteps})
        runner_b = Runner(store, {"SlowSteps": SlowSteps})
        client = workflow(SlowSteps)
        instance = await client.create(params={**params, "steps": 2, "seconds": 0.5})
        first = asyncio.ensure_future(runner_a.activate(instance.id))
        await eventually(lambda: counter(redis_client, params, "s0"))
        second = await runner_b.activate(instance.id)
        assert second.status == "busy"
        assert (await first).status == "complete"
        assert await instance.result(timeout=5) == [0, 1]
        assert await counter(redis_client, params, "s0") == 1
        assert await counter(redis_client, params, "s1") == 1
    finally:
        await store.close()


async def test_event_while_a_later_activation_replays(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """The wait was registered by the first activation; the event arrives while the second
    activation (a retry wake-up) replays and runs the retried sibling step: no new job, the
    runner replays once more, the side step runs once."""
    await start_workers(workflows=[RetryBesideWait], concurrency=4)
    await start_workers(workflows=[RetryBesideWait], concurrency=4)
    client = workflow(RetryBesideWait)
    instance = await client.create(params={**params, "busy_seconds": 1.0, "delay": 0.4})
    k = client.store.keys(instance.id)
    await eventually(lambda: redis_client.hget(k.waiters, "go"))
    await eventually(lambda: _equals(counter(redis_client, params, "busy"), 2), timeout=5)
    assert int(await redis_client.hget(k.instance, "activations")) == 2
    assert (await instance.status()).status == "running"
    seq_before = int(await redis_client.hget(k.instance, "seq"))
    assert await instance.send_event("go", "now") is True
    assert int(await redis_client.hget(k.instance, "seq")) == seq_before
    assert await instance.result(timeout=15) == {"busy": 2, "event": "now", "n": 1}
    assert await counter(redis_client, params, "busy") == 2
    assert await counter(redis_client, params, "side") == 1
    assert int(await redis_client.hget(k.instance, "activations")) == 2


async def _equals(value: Awaitable[int], wanted: int) -> bool:
    return await value == wanted
