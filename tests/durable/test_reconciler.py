"""Spec §5.9 group 9: the durable reconciler re-enqueues instances whose activation job was lost
(never running them in place), one leader at a time, without duplicates while an old lease is
alive; the ``bullflow durable-reconcile`` command prints its stats as JSON."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from bullflow.durable import DurableReconciler, DurableStore
from bullflow.settings import DurableSettings, RedisSettings

from .durable_helpers import counter, eventually
from .workflows import CountedSteps, SlowSteps

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def make_store(redis_server: str, durable_settings: DurableSettings) -> Any:
    made: list[DurableStore] = []

    def make() -> DurableStore:
        store = DurableStore(RedisSettings.from_url(redis_server), durable_settings)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def jobs_of(store: DurableStore, instance_id: str) -> list[str]:
    jobs = await store.queue.getJobs(["waiting", "prioritized", "delayed", "active"])
    return sorted(job.id for job in jobs if job.data.get("instanceId") == instance_id)


async def lose_all_jobs(store: DurableStore) -> None:
    """The queue's jobs are gone (a Redis failover without persistence, a crashed process whose
    job cannot come back): obliterate the queue and let it run again."""
    await store.queue.obliterate(force=True)
    await store.queue.resume()


async def steps_once(redis: Redis, params: dict[str, Any], instance_id: str) -> list[int]:
    names = [f"{params['counter']}:{instance_id}:{step}" for step in "abc"]
    return [int(c or 0) for c in await redis.mget(names)]


async def test_lost_queued_job_is_requeued_not_run_in_place(
    start_workers: Any, workflow: Any, make_store: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    client = workflow(CountedSteps)
    store = make_store()
    instance = await client.create(params=params)
    reconciler = DurableReconciler(store)
    # its job is there: nothing to do
    await asyncio.sleep(0.6)
    stats = await reconciler.run_once()
    assert stats.scanned == 1 and stats.queued == 1 and stats.requeued == 0
    assert await jobs_of(store, instance.id) == [f"{instance.id}-r1"]

    await lose_all_jobs(store)
    assert await jobs_of(store, instance.id) == []
    stats = await reconciler.run_once(grace_seconds=0)
    assert stats.requeued == 1 and stats.scanned == 1
    jobs = await jobs_of(store, instance.id)
    assert jobs == [f"{instance.id}-r2"]
    # it enqueued; it did not run anything
    assert (await instance.status()).status == "queued"
    assert await steps_once(redis_client, params, instance.id) == [0, 0, 0]
    assert not await redis_client.exists(store.keys(instance.id).lease)

    await start_workers(workflows=[CountedSteps])
    assert await instance.result(timeout=10) == 3
    assert await steps_once(redis_client, params, instance.id) == [1, 1, 1]
    events = [e.event for e in await instance.logs()]
    assert events.count("WORKFLOW_REQUEUED") == 1 and events.count("WORKFLOW_SUCCESS") == 1
    # finished: the next pass drops it from the index
    stats = await reconciler.run_once(grace_seconds=0)
    assert stats.requeued == 0
    assert await redis_client.zscore(store.active_key, instance.id) is None


async def test_worker_with_reconcile_interval_recovers_lost_job(
    start_workers: Any, workflow: Any, make_store: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    client = workflow(CountedSteps)
    store = make_store()
    instance = await client.create(params=params)
    await lose_all_jobs(store)
    await start_workers(workflows=[CountedSteps], reconcile_interval=0.3)
    assert await instance.result(timeout=10) == 3
    assert await steps_once(redis_client, params, instance.id) == [1, 1, 1]


async def test_concurrent_reconcilers_enqueue_each_instance_once(
    start_workers: Any, workflow: Any, make_store: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    client = workflow(CountedSteps)
    instances = await client.create_batch([{"params": params} for _ in range(10)])
    store = make_store()
    await lose_all_jobs(store)
    await asyncio.sleep(0.6)
    reconcilers = [DurableReconciler(make_store()) for _ in range(4)]
    results = await asyncio.gather(*(r.run_once() for r in reconcilers))
    leaders = [s for s in results if not s.skipped_not_leader]
    assert len(leaders) == 1
    assert leaders[0].requeued == 10
    assert sum(s.requeued for s in results) == 10
    for instance in instances:
        assert len(await jobs_of(store, instance.id)) == 1
    # again, from all of them, once the leader lease is free: the jobs are there, nothing more
    await asyncio.sleep(1.1)
    results = await asyncio.gather(*(r.run_once() for r in reconcilers))
    assert sum(s.requeued for s in results) == 0
    assert sum(s.queued for s in results) == 10
    for instance in instances:
        assert len(await jobs_of(store, instance.id)) == 1

    await start_workers(workflows=[CountedSteps], concurrency=10)
    assert await asyncio.gather(*(i.result(timeout=10) for i in instances)) == [3] * 10
    for instance in instances:
        assert await steps_once(redis_client, params, instance.id) == [1, 1, 1]


async def test_killed_only_worker_and_lost_job_recovered_once(
    spawn_durable_worker: Any, workflow: Any, make_store: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """kill -9 of the only worker process mid-step, and its job removed so BullMQ cannot
    redeliver it. While the dead runner's lease is alive the reconciler leaves the instance
    alone (LEASE_HELD); after it the instance is re-enqueued once, and a new worker finishes it:
    the killed step runs twice (killed + retried), every other step once."""
    proc = spawn_durable_worker(concurrency=2)
    client = workflow(SlowSteps)
    store = make_store()
    instance = await client.create(params={**params, "steps": 2, "seconds": 0.1, "kill_in_step": 0})
    await asyncio.to_thread(proc.proc.wait, 10)
    assert proc.proc.returncode == -9
    k = store.keys(instance.id)
    assert await redis_client.exists(k.lease)  # the dead runner's lease is still alive
    await lose_all_jobs(store)
    assert await jobs_of(store, instance.id) == []

    # recovery starts while the old lease is alive: no re-enqueue, nothing duplicated
    reconciler = DurableReconciler(store)
    stats = await reconciler.run_once(grace_seconds=0)
    assert stats.busy == 1 and stats.requeued == 0
    assert await jobs_of(store, instance.id) == []
    # an activation job that arrives now (a reconciler that crashed after enqueueing) is turned
    # away by the lease, too: LEASE_HELD, no step runs
    from bullflow.durable.runner import Runner

    outcome = await Runner(store, {"SlowSteps": SlowSteps}).activate(instance.id)
    assert outcome.status == "busy"
    assert await counter(redis_client, params, "s0") == 1
    await lose_all_jobs(store)  # drop the nudge that activation left

    await eventually(lambda: _gone(redis_client, k.lease), timeout=5)
    stats = await reconciler.run_once(grace_seconds=0)
    assert stats.requeued == 1
    assert len(await jobs_of(store, instance.id)) == 1
    stats = await reconciler.run_once(grace_seconds=0)  # the job is queued now
    assert stats.requeued == 0 and stats.queued == 1
    assert len(await jobs_of(store, instance.id)) == 1

    spawn_durable_worker(concurrency=2)
    assert await instance.result(timeout=15) == [0, 1]
    assert await counter(redis_client, params, "s0") == 2
    assert await counter(redis_client, params, "s1") == 1
    logs = await instance.logs()
    assert [(e.step, e.detail) for e in logs if e.event == "ATTEMPT_START"] == [("do:s0#1", "2")]
    assert [e.event for e in logs].count("WORKFLOW_SUCCESS") == 1


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def test_durable_reconcile_cli_prints_json_stats(
    redis_server: str,
    durable_settings: DurableSettings,
    workflow: Any,
    make_store: Any,
    params: dict[str, Any],
) -> None:
    client = workflow(CountedSteps)
    store = make_store()
    instance = await client.create(params=params)
    await lose_all_jobs(store)
    s = durable_settings
    command = [
        sys.executable,
        "-m",
        "bullflow",
        "durable-reconcile",
        "--redis-url",
        redis_server,
        "--prefix",
        s.prefix,
        "--queue",
        s.queue_name,
        "--reconcile-grace",
        "0",
    ]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    stats = orjson.loads(done.stdout)
    assert stats["requeued"] == 1 and stats["scanned"] == 1
    assert stats["skipped_not_leader"] is False
    assert set(stats) >= {"scanned", "requeued", "dropped", "busy", "queued", "not_due"}
    assert await jobs_of(store, instance.id) == [f"{instance.id}-r2"]
