"""Bad input fails that run with a clear reason, and the worker keeps serving other runs."""

from __future__ import annotations

from typing import Any

import pytest
from bullmq import Queue

from bullflow import keys
from bullflow.tracking import run_view

pytestmark = pytest.mark.timeout(60)

GOOD = {"id": "good", "nodes": [{"id": "A", "uses": "echo"}], "edges": []}


def one_node(uses: str, **node: Any) -> dict[str, Any]:
    return {"id": f"bad-{uses}", "nodes": [{"id": "N", "uses": uses, **node}], "edges": []}


async def enqueue(redis_server: str, queue_name: str, data: Any) -> None:
    port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    queue = Queue(queue_name, {"connection": {"host": "127.0.0.1", "port": port, "socket_timeout": None}})
    try:
        await queue.add("executeNode", data)
    finally:
        await queue.close()


async def still_serves(client: Any) -> None:
    result = await (await client.start("good")).result(20)
    assert result.status == "completed"


async def test_unknown_blueprint_fails_the_run(
    make_adapter: Any, make_client: Any, redis_client: Any, redis_server: str, key_prefix: str
) -> None:
    make_adapter([GOOD])
    client = make_client([GOOD])
    run_id = f"{key_prefix}-unknown-bp"
    await redis_client.hset(keys.state_key(run_id), "blueprintId", '"nope"')
    await enqueue(redis_server, key_prefix, {"runId": run_id, "blueprintId": "nope", "nodeId": "A"})
    result = await client.handle(run_id).result(20)
    assert result.status == "failed"
    assert result.errors[0].message == "Blueprint with ID 'nope' not found in the worker's runtime registry."
    # the run tracking lists it and shows why, though it never had a coordination hash
    view = await run_view(redis_client, run_id)
    assert view is not None and view.status == "failed" and view.tasks == []
    assert view.reason == result.errors[0].message
    assert [e.type for e in view.logs] == ["run-failed"]
    assert await redis_client.zscore(keys.RUN_INDEX_KEY, run_id) is not None
    assert await redis_client.ttl(keys.run_log_key(run_id)) > 0
    await still_serves(client)


async def test_a_job_for_an_unknown_run_fails_that_run(
    make_adapter: Any, make_client: Any, redis_server: str, key_prefix: str
) -> None:
    make_adapter([GOOD])
    client = make_client([GOOD])
    run_id = f"{key_prefix}-ghost"
    await enqueue(redis_server, key_prefix, {"runId": run_id, "blueprintId": "good", "nodeId": "A"})
    result = await client.handle(run_id).result(20)
    assert result.status == "failed"
    assert f"Run '{run_id}' has no state" in result.errors[0].message
    await still_serves(client)


async def test_a_job_without_ids_is_dropped_and_the_worker_goes_on(
    make_adapter: Any, make_client: Any, redis_server: str, key_prefix: str
) -> None:
    adapter = make_adapter([GOOD])
    client = make_client([GOOD])
    await enqueue(redis_server, key_prefix, {"hello": "world"})
    await still_serves(client)
    assert adapter.jobs_processed >= 2


async def test_a_corrupt_state_field_fails_the_run_naming_the_field(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    bp = {
        "id": "corrupt",
        "nodes": [{"id": "A", "uses": "echo"}, {"id": "B", "uses": "echo", "inputs": "payload"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    make_adapter([bp, GOOD])
    client = make_client([bp, GOOD])
    handle = await client.start("corrupt", {"payload": "fine"})
    await redis_client.hset(keys.state_key(handle.run_id), "payload", "{not json")
    result = await handle.result(20)
    assert result.status in ("failed", "completed")
    if result.status == "failed":  # the write raced A: B read the corrupt field
        assert "corrupt state field" in result.errors[0].message and "payload" in result.errors[0].message
    handle = await client.start("corrupt")
    await redis_client.hset(keys.state_key(handle.run_id), "payload", "{not json")
    await redis_client.hset(keys.state_key(handle.run_id), "_outputs.payload", "[1,")
    result = await handle.result(20)
    assert result.status == "failed"
    assert "corrupt state field" in result.errors[0].message
    assert "_outputs.payload" in result.errors[0].message
    await still_serves(client)


async def test_an_oversized_payload_fails_the_run(make_adapter: Any, make_client: Any) -> None:
    bp = one_node("big", params={"size": 5000})
    make_adapter([bp, GOOD], max_payload_bytes=1000)
    client = make_client([bp, GOOD])
    result = await (await client.start(bp["id"])).result(20)
    assert result.status == "failed"
    assert "over the limit of 1,000 (max_payload_bytes)" in result.errors[0].message
    assert "Node 'N'" in result.errors[0].message
    await still_serves(client)


async def test_a_value_json_cannot_hold_fails_the_run(make_adapter: Any, make_client: Any) -> None:
    bp = one_node("not-json")
    make_adapter([bp, GOOD])
    client = make_client([bp, GOOD])
    result = await (await client.start(bp["id"])).result(20)
    assert result.status == "failed"
    assert "JSON cannot hold" in result.errors[0].message and "Node 'N'" in result.errors[0].message
    await still_serves(client)


async def test_a_missing_implementation_fails_the_run(make_adapter: Any, make_client: Any) -> None:
    bp = one_node("no-such-node")
    make_adapter([bp, GOOD])
    client = make_client([bp, GOOD])
    result = await (await client.start(bp["id"])).result(20)
    assert result.status == "failed"
    assert result.errors[0].message == (
        f"Blueprint '{bp['id']}' uses 'no-such-node' (node 'N'), which this worker does not implement; "
        "the run is refused"
    )
    assert result.errors[0].node_id == "N"
    await still_serves(client)
