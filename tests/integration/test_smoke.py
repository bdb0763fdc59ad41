"""The distributed runtime end to end: an in-process worker and a worker process."""

from __future__ import annotations

from typing import Any

import pytest

from bullflow import keys

DIAMOND: dict[str, Any] = {
    "id": "diamond",
    "nodes": [
        {"id": "A", "uses": "echo"},
        {"id": "B", "uses": "echo"},
        {"id": "C", "uses": "setter", "params": {"values": {"shared": {"n": 1}}}},
        {"id": "J", "uses": "echo"},
    ],
    "edges": [
        {"source": "A", "target": "B"},
        {"source": "A", "target": "C"},
        {"source": "B", "target": "J"},
        {"source": "C", "target": "J"},
    ],
}


async def test_a_diamond_completes_on_an_in_process_worker(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    make_adapter([DIAMOND])
    client = make_client([DIAMOND])
    handle = await client.start("diamond", {"topic": "x"})
    result = await handle.result(20)
    assert result.status == "completed", result.errors
    ctx = result.context
    assert ctx["_outputs.A"] == "A(None)" and ctx["shared"] == {"n": 1}
    assert ctx["_outputs.J"] in ("J(B(A(None)))", "J(set)")
    assert ctx["blueprintId"] == "diamond" and ctx["blueprintVersion"] is None
    assert await redis_client.ttl(keys.state_key(handle.run_id)) > 0
    assert await redis_client.ttl(keys.status_key(handle.run_id)) > 0


async def test_a_diamond_completes_on_a_worker_process(spawn_worker: Any, make_client: Any) -> None:
    spawn_worker([DIAMOND])
    client = make_client([DIAMOND])
    handles = [await client.start("diamond") for _ in range(20)]
    for handle in handles:
        assert (await handle.result(20)).status == "completed"


CHAIN: dict[str, Any] = {
    "id": "chain3",
    "nodes": [{"id": "A", "uses": "echo"}, {"id": "B", "uses": "echo"}, {"id": "C", "uses": "echo"}],
    "edges": [{"source": "A", "target": "B"}, {"source": "B", "target": "C"}],
}


async def _flush(redis_client: Any, what: str) -> None:
    """Make the server lose its Lua as a restart without persistence does ("restart": the
    function library and every script, bullmq's too), or only the library or the scripts."""
    if what in ("restart", "functions"):
        await redis_client.execute_command("FUNCTION", "FLUSH")
    if what in ("restart", "scripts"):
        await redis_client.script_flush()


@pytest.mark.parametrize("flushed", ["restart", "functions", "scripts"])
async def test_a_commit_after_the_server_lost_its_lua_still_wakes_the_next_node(
    make_adapter: Any, make_client: Any, redis_client: Any, flushed: str
) -> None:
    """After the server lost the library (a restart, FUNCTION FLUSH) the fast loop's finishJobs
    call and the client's startRun find no function: the library is loaded and the call made
    again, and the next node runs at once instead of waiting out the blocking timeout (5 s).
    Losing only the scripts (SCRIPT FLUSH) costs bullmq's own scripts a reload."""
    make_adapter([CHAIN], concurrency=2, worker_loop="fast")
    client = make_client([CHAIN])
    assert (await (await client.start("chain3")).result(20)).status == "completed"
    await _flush(redis_client, flushed)
    result = await (await client.start("chain3")).result(2.5)
    assert result.status == "completed"
    assert result.context["_outputs.C"] == "C(B(A(None)))"


@pytest.mark.parametrize("server", ["as-is", "restart", "flushall"])
async def test_start_many_starts_every_run_with_its_context(
    make_adapter: Any, make_client: Any, redis_client: Any, server: str
) -> None:
    """``start_many`` pipelines the startRun calls: every run starts with its own context and
    completes; after the server lost its Lua (the library missing) or FLUSHALL (the graph gone)
    the runs start all the same."""
    make_adapter([CHAIN], concurrency=8)
    client = make_client([CHAIN])
    assert await client.start_many("chain3", 0) == []
    assert (await (await client.start("chain3")).result(20)).status == "completed"
    if server == "restart":
        await _flush(redis_client, "restart")
    elif server == "flushall":
        await redis_client.flushall()
    handles = await client.start_many("chain3", [{"n": i} for i in range(300)])
    assert len({h.run_id for h in handles}) == 300
    results = [await h.result(30) for h in handles]
    assert [r.status for r in results] == ["completed"] * 300
    assert [r.context["n"] for r in results] == list(range(300))
    assert all(r.context["_outputs.C"] == "C(B(A(None)))" for r in results)
