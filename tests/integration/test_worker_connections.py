"""The fast worker loop's own connections: the group commits (bullflow.job_batch) hold theirs
from the client's pool instead of checking one out per call, so a connection the server drops
must be reconnected by the calls themselves, and the runs must go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

pytestmark = pytest.mark.timeout(60)

DIAMOND = {
    "id": "diamond",
    "nodes": [{"id": x, "uses": "echo"} for x in "abcd"],
    "edges": [{"source": s, "target": t} for s, t in ("ab", "ac", "bd", "cd")],
}


async def _diamonds(client: Any, count: int) -> None:
    handles = await client.start_many("diamond", count)
    results = await asyncio.gather(*(h.result(20) for h in handles))
    for result in results:
        assert result.status == "completed"
        outputs = {k: v for k, v in result.context.items() if k.startswith("_outputs.")}
        assert outputs.pop("_outputs.d") in ("d(b(a(None)))", "d(c(a(None)))")  # the later input
        assert outputs == {"_outputs.a": "a(None)", "_outputs.b": "b(a(None))", "_outputs.c": "c(a(None))"}


async def test_runs_go_on_after_the_server_drops_the_workers_connections(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    adapter = make_adapter([DIAMOND], concurrency=10)
    client = make_client([DIAMOND])
    await _diamonds(client, 30)
    assert adapter.batcher is not None and adapter.batcher.calls > 0
    calls = adapter.batcher.calls
    # every connection but this test's: the workers' held ones among them
    killed = await redis_client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert int(killed) > 0
    await _diamonds(client, 30)
    assert adapter.batcher.calls > calls  # the group commits went on, on new connections
    assert adapter.jobs_processed == 2 * 30 * 4


async def test_a_worker_sends_a_group_at_half_its_slots(make_adapter: Any, make_client: Any) -> None:
    """(bullflow.job_batch: a group is written the moment it holds ``send_at`` entries; see
    tests/integration/test_group_commit.py.)"""
    adapter = make_adapter([DIAMOND], concurrency=20)
    assert adapter.batcher is not None and adapter.batcher.send_at == 10
    await _diamonds(make_client([DIAMOND]), 40)
    assert adapter.jobs_processed == 40 * 4
    assert adapter.batcher.calls > 1
