"""Crash safety: a worker process killed with SIGKILL in the middle of 200 concurrent diamond and
fan-in runs loses nothing; a new worker finishes every run and every join commits exactly once.
And the reconciler resumes a run whose queued job was deleted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bullflow import keys
from bullflow.adapter import BullMQAdapter
from bullflow.reconciler import create_bullmq_reconciler

pytestmark = pytest.mark.timeout(120)


def shapes(log: Path) -> list[dict[str, Any]]:
    slow = {"seconds": 0.05, "log": str(log)}
    diamond = {
        "id": "diamond",
        "nodes": [
            {"id": "A", "uses": "slow", "params": slow},
            {"id": "B", "uses": "slow", "params": slow},
            {"id": "C", "uses": "slow", "params": slow},
            {"id": "J", "uses": "record", "params": {"log": str(log)}},
        ],
        "edges": [
            {"source": "A", "target": "B"},
            {"source": "A", "target": "C"},
            {"source": "B", "target": "J"},
            {"source": "C", "target": "J"},
        ],
    }
    fanin = {
        "id": "fanin",
        "nodes": [
            *({"id": f"P{i}", "uses": "slow", "params": slow} for i in range(5)),
            {"id": "J", "uses": "record", "params": {"log": str(log)}},
        ],
        "edges": [{"source": f"P{i}", "target": "J"} for i in range(5)],
    }
    return [diamond, fanin]


async def test_kill_9_mid_run_loses_nothing_and_joins_commit_once(
    spawn_worker: Any, make_client: Any, redis_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    blueprints = shapes(log)
    options = {"concurrency": 20, "lock_ms": 1000, "stalled_ms": 500, "max_stalled": 20}
    first = spawn_worker(blueprints, **options)
    client = make_client(blueprints)
    handles = [await client.start("diamond" if i % 2 else "fanin") for i in range(200)]
    # let the worker get into the middle of things
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = sum(1 for line in log.read_text().splitlines()) if log.exists() else 0
        if done > 150:
            break
        await asyncio.sleep(0.02)
    first.kill()
    finished_before = len([h for h in handles if await redis_client.get(keys.status_key(h.run_id))])
    assert finished_before < 200, "the worker finished everything before it was killed"
    spawn_worker(blueprints, **options)
    results = await asyncio.gather(*(h.result(60) for h in handles))
    assert [r.status for r in results] == ["completed"] * 200
    for handle, result in zip(handles, results, strict=True):
        assert result.context["_outputs.J"].startswith("J:")
        run = await redis_client.hgetall(keys.run_key(handle.run_id))
        join = b"3" if result.blueprint_id == "diamond" else b"5"
        assert run[b"s:" + join] == b"3"
        assert b"it:" + join not in run  # the join was made ready, and committed, once
        assert run[b"out"] == b"0"
    executions = log.read_text().splitlines()
    joins = [line for line in executions if line.split()[1] == "J"]
    assert len({line.split()[0] for line in joins}) == 200


async def test_reconciler_resumes_a_run_whose_queued_job_was_deleted(
    make_adapter: Any, make_client: Any, redis_client: Any, key_prefix: str
) -> None:
    bp = {
        "id": "chain",
        "nodes": [{"id": "A", "uses": "echo"}, {"id": "B", "uses": "echo"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    client = make_client([bp])
    handle = await client.start("chain")
    prefix = keys.queue_key_prefix(key_prefix)
    job = keys.job_id(handle.run_id, "A")
    assert await redis_client.lrem(prefix + "wait", 0, job) == 1
    assert await redis_client.delete(prefix + job) == 1
    adapter = BullMQAdapter(blueprints=[bp], connection=client.settings, queue_name=key_prefix)
    await asyncio.sleep(0.01)
    stats = await create_bullmq_reconciler(
        adapter=adapter, redis=redis_client, stalled_threshold_seconds=0
    ).run()
    assert stats.reconciled_runs >= 1
    assert await redis_client.lrange(prefix + "wait", 0, -1) == [job.encode()]
    make_adapter([bp])
    result = await handle.result(20)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "B(A(None))"


async def test_reconcilers_in_parallel_put_a_lost_job_back_once(
    make_client: Any, redis_client: Any, key_prefix: str
) -> None:
    bp = {"id": "one", "nodes": [{"id": "A", "uses": "echo"}], "edges": []}
    client = make_client([bp])
    handle = await client.start("one")
    prefix = keys.queue_key_prefix(key_prefix)
    job = keys.job_id(handle.run_id, "A")
    await redis_client.lrem(prefix + "wait", 0, job)
    await redis_client.delete(prefix + job)
    adapter = BullMQAdapter(blueprints=[bp], connection=client.settings, queue_name=key_prefix)
    await asyncio.sleep(0.01)
    reconcilers = [
        create_bullmq_reconciler(adapter=adapter, redis=redis_client, stalled_threshold_seconds=0)
        for _ in range(4)
    ]
    await asyncio.gather(*(r.run() for r in reconcilers))
    assert await redis_client.lrange(prefix + "wait", 0, -1) == [job.encode()]
