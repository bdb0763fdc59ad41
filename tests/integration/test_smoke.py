"""The distributed runtime end to end: an in-process worker and a worker process."""

from __future__ import annotations

from typing import Any

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
