"""What a finished run leaves in Redis, and how many bytes: every key that mentions the run id
(SCAN) and the queue's job hashes of its nodes, after the run completed on an in-process worker.

By default a finished run keeps ``workflow:state:<run>``, ``workflow:status:<run>`` and
``bullflow:run:<run>`` for ``RunOptions.state_ttl_seconds`` (86400 s), and bullmq keeps each
completed node job hash ``bull:<queue>:<runId>_<nodeId>`` for 7 days (``removeOnComplete:
{age: 604800}``; failed jobs 15 days). With ``removeOnComplete: True`` no job hash remains.
Nodes are no-ops (output ``null``), so the bytes are bullflow's own overhead. The byte counts (``MEMORY USAGE``, summed) are printed; run with ``-s`` to see them
(``bench/MEMORY.md`` records them)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow import keys
from bullflow.coordination import RunOptions


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def diamond() -> dict[str, Any]:
    return {
        "id": "diamond",
        "nodes": [{"id": x, "uses": "nothing"} for x in "ABCD"],
        "edges": [
            {"source": "A", "target": "B"},
            {"source": "A", "target": "C"},
            {"source": "B", "target": "D"},
            {"source": "C", "target": "D"},
        ],
    }


def chain(n: int) -> dict[str, Any]:
    return {
        "id": f"chain-{n}",
        "nodes": [{"id": f"n{i}", "uses": "nothing"} for i in range(n)],
        "edges": [{"source": f"n{i - 1}", "target": f"n{i}"} for i in range(1, n)],
    }


async def leftovers(redis: Redis, run_id: str, queue: str) -> dict[str, str]:
    """Every key whose name holds the run id, by type."""
    found: dict[str, str] = {}
    async for raw in redis.scan_iter(match=f"*{run_id}*", count=1000):
        key = text(raw)
        found[key] = text(await redis.type(key))
    return found


async def memory(redis: Redis, names: list[str]) -> int:
    total = 0
    for key in names:
        used = await redis.memory_usage(key, samples=0)
        assert used is not None, key
        total += int(used)
    return total


async def finish(
    make_adapter: Any, make_client: Any, blueprint: dict[str, Any], options: RunOptions | None = None
) -> str:
    make_adapter([blueprint])
    client = make_client([blueprint], **({"run_options": options} if options else {}))
    handle = await client.start(blueprint["id"], {"topic": "x"})
    result = await handle.result(30)
    assert result.status == "completed", result.errors
    return str(handle.run_id)


@pytest.mark.parametrize(
    ("blueprint", "nodes"), [(diamond(), "ABCD"), (chain(20), [f"n{i}" for i in range(20)])]
)
async def test_a_finished_run_leaves_its_state_status_run_hash_and_completed_jobs(
    make_adapter: Any,
    make_client: Any,
    redis_client: Redis,
    key_prefix: str,
    blueprint: dict[str, Any],
    nodes: Any,
) -> None:
    run_id = await finish(make_adapter, make_client, blueprint)
    ttl = RunOptions().state_ttl_seconds
    run_keys = [
        keys.state_key(run_id),
        keys.status_key(run_id),
        keys.run_key(run_id),
        keys.run_log_key(run_id),
    ]
    queue_prefix = keys.queue_key_prefix(key_prefix)
    job_keys = [queue_prefix + keys.job_id(run_id, node) for node in nodes]

    found = await leftovers(redis_client, run_id, key_prefix)
    assert set(found) == {*run_keys, *job_keys}, sorted(set(found) ^ {*run_keys, *job_keys})
    assert not [k for k in found if k.startswith("flowcraft:")]
    for key in run_keys:
        assert 0 < await redis_client.ttl(key) <= ttl, key
    completed = {text(m) for m in await redis_client.zrange(queue_prefix + "completed", 0, -1)}
    for key in job_keys:
        assert found[key] == "hash"
        assert await redis_client.ttl(key) == -1, key  # bullmq removes them by age, on later completions
        opts = json.loads(text(await redis_client.hget(key, "opts")))  # type: ignore[misc]
        assert opts["removeOnComplete"] == {"age": 604800}
        assert opts["removeOnFail"] == {"age": 1296000}
        assert key.removeprefix(queue_prefix) in completed
    # no other job of the run in the queue's lists and sets
    for name in ("wait", "active", "delayed", "failed", "prioritized"):
        kind = text(await redis_client.type(queue_prefix + name))
        if kind == "list":
            members = await redis_client.lrange(queue_prefix + name, 0, -1)  # type: ignore[misc]
        elif kind == "zset":
            members = await redis_client.zrange(queue_prefix + name, 0, -1)
        else:
            members = []
        assert not [m for m in members if run_id in text(m)], name

    run_bytes = await memory(redis_client, run_keys)
    job_bytes = await memory(redis_client, job_keys)
    per_key = {
        k: f"{await redis_client.memory_usage(k, samples=0)} {text(await redis_client.object('encoding', k))}"
        for k in run_keys
    }
    print(
        f"\n{blueprint['id']} ({len(job_keys)} nodes): {run_bytes + job_bytes} bytes per completed run"
        f" = {run_bytes} state/status/run ({', '.join(f'{k.split(run_id)[0]}: {v}' for k, v in per_key.items())})"
        f" + {job_bytes} in {len(job_keys)} job hashes ({job_bytes // len(job_keys)} each)"
    )


async def test_remove_on_complete_leaves_no_job_hashes(
    make_adapter: Any, make_client: Any, redis_client: Redis, key_prefix: str
) -> None:
    options = RunOptions(job_options={"removeOnComplete": True, "removeOnFail": {"age": 1296000}})
    run_id = await finish(make_adapter, make_client, chain(20), options)
    run_keys = [
        keys.state_key(run_id),
        keys.status_key(run_id),
        keys.run_key(run_id),
        keys.run_log_key(run_id),
    ]
    found = await leftovers(redis_client, run_id, key_prefix)
    assert set(found) == set(run_keys)
    queue_prefix = keys.queue_key_prefix(key_prefix)
    completed = [text(m) for m in await redis_client.zrange(queue_prefix + "completed", 0, -1)]
    assert not [m for m in completed if run_id in m]
    run_bytes = await memory(redis_client, run_keys)
    per_key = {
        k: f"{await redis_client.memory_usage(k, samples=0)} {text(await redis_client.object('encoding', k))}"
        for k in run_keys
    }
    print(
        f"\nchain-20 with removeOnComplete: true: {run_bytes} bytes per completed run, no job hashes"
        f" ({', '.join(f'{k.split(run_id)[0]}: {v}' for k, v in per_key.items())})"
    )
