"""Flowcraft's distributed defects (spec §7.2 A-I) and the rows of its behaviour matrix
(Appendix B), each showing bullflow's correct behaviour against a real redis-server with bullmq
workers. Test names carry the defect letter or the Appendix B row."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bullmq import Queue

from bullflow import NodeContext, NodeResult, keys
from bullflow.reconciler import create_bullmq_reconciler

pytestmark = pytest.mark.timeout(60)


def ret(value: Any) -> Any:
    return lambda ctx: value


async def count_statuses(redis_client: Any, run_id: str, ready: asyncio.Event, seen: list[bytes]) -> None:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.status_channel(run_id))
    ready.set()
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                seen.append(message["data"])
    finally:
        await pubsub.aclose()


async def start_and_watch(client: Any, redis_client: Any, blueprint_id: str, run_id: str, **kw: Any) -> Any:
    ready = asyncio.Event()
    seen: list[bytes] = []
    watcher = asyncio.create_task(count_statuses(redis_client, run_id, ready, seen))
    await ready.wait()
    handle = await client.start(blueprint_id, run_id=run_id, **kw)
    return handle, watcher, seen


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def test_defect_A_undefined_outputs_are_stored_as_null(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    """7.2-A: a node with no output made Flowcraft store '' and the next job fail to parse it."""
    bp = {
        "id": "undef",
        "nodes": [{"id": "A", "uses": "nothing"}, {"id": "B", "uses": "echo"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    make_adapter([bp])
    handle = await make_client([bp]).start("undef")
    result = await handle.result(20)
    assert result.status == "completed"
    assert await redis_client.hget(keys.state_key(handle.run_id), "_outputs.A") == b"null"
    assert result.context["_outputs.B"] == "B(None)"


async def test_defect_B_any_join_with_three_predecessors_completes_once(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    """7.2-B / Appendix B 'any-join A,B,D(slow)->C': completed, and never overwritten by failed."""
    calls: list[Any] = []
    release = asyncio.Event()

    async def slow(ctx: NodeContext) -> str:
        await release.wait()
        return "D"

    def join(ctx: NodeContext) -> str:
        calls.append(ctx.input)
        return "C"

    bp = {
        "id": "anyjoin",
        "nodes": [
            {"id": "A", "uses": "a"},
            {"id": "B", "uses": "b"},
            {"id": "D", "uses": "slow"},
            {"id": "C", "uses": "join", "config": {"joinStrategy": "any"}},
        ],
        "edges": [{"source": x, "target": "C"} for x in "ABD"],
    }
    make_adapter([bp], registry={"a": ret("A"), "b": ret("B"), "slow": slow, "join": join})
    client = make_client([bp])
    handle, watcher, seen = await start_and_watch(
        client, redis_client, "anyjoin", "any-run-" + client.queue_name
    )
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.02)
    release.set()
    result = await handle.result(20)
    await asyncio.sleep(0.3)
    await stop(watcher)
    assert result.status == "completed"
    assert len(calls) == 1
    assert len(seen) == 1 and b'"status":"completed"' in seen[0]
    assert (await client.status(handle.run_id)).status == "completed"  # type: ignore[union-attr]


async def test_defect_C_a_client_without_blueprint_version_does_not_stall(
    make_adapter: Any, make_client: Any, redis_client: Any, key_prefix: str, redis_server: str
) -> None:
    """7.2-C / Appendix B 'no blueprintVersion in hash': a client that writes the context and
    enqueues the start jobs itself (no version, numeric job ids) gets its run completed."""
    bp = {
        "id": "legacy",
        "nodes": [{"id": "A", "uses": "echo"}, {"id": "B", "uses": "echo"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    make_adapter([bp])
    client = make_client([bp])
    run_id = "legacy-" + key_prefix
    await redis_client.hset(keys.state_key(run_id), mapping={"blueprintId": '"legacy"', "topic": '"x"'})
    port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    queue = Queue(key_prefix, {"connection": {"host": "127.0.0.1", "port": port, "socket_timeout": None}})
    try:
        await queue.addBulk(
            [{"name": "executeNode", "data": {"runId": run_id, "blueprintId": "legacy", "nodeId": "A"}}]
        )
    finally:
        await queue.close()
    result = await client.handle(run_id).result(20)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "B(A(None))"
    assert result.context["topic"] == "x"


async def test_defect_D_exclusive_terminal_branches_publish_completion(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    """7.2-D / Appendix B 'router takes left, terminal X never runs': completed, TTLs set."""
    bp = {
        "id": "branches",
        "nodes": [
            {"id": "R", "uses": "route", "params": {"action": "left"}},
            {"id": "L", "uses": "echo"},
            {"id": "X", "uses": "echo"},
            {"id": "J", "uses": "echo"},
            {"id": "Y", "uses": "echo"},
        ],
        "edges": [
            {"source": "R", "target": "L", "action": "left"},
            {"source": "R", "target": "X", "action": "right"},
            {"source": "L", "target": "J"},
            {"source": "X", "target": "J"},
            {"source": "X", "target": "Y"},
        ],
    }
    make_adapter([bp])
    handle = await make_client([bp]).start("branches")
    result = await handle.result(20)
    assert result.status == "completed"
    assert "_outputs.X" not in result.context and "_outputs.Y" not in result.context
    assert result.context["_outputs.J"].startswith("J(")
    for key in (keys.state_key(handle.run_id), keys.run_key(handle.run_id), keys.status_key(handle.run_id)):
        assert 0 < await redis_client.ttl(key) <= 86400
    assert [k async for k in redis_client.scan_iter(match=f"flowcraft:*{handle.run_id}*")] == []


async def test_defect_E_queue_retries_retry_and_blueprints_are_never_mutated(
    make_adapter: Any, make_client: Any
) -> None:
    """7.2-E / Appendix B 'retryMode queue, successor fails once' and 'start node fails'."""
    attempts: list[tuple[str, int]] = []

    def flaky(ctx: NodeContext) -> str:
        attempts.append((ctx.run_id, ctx.attempt))
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    bp = {
        "id": "queue-retry",
        "nodes": [
            {"id": "S", "uses": "flaky", "config": {"maxRetries": 2}},
            {"id": "F", "uses": "flaky", "config": {"maxRetries": 2}},
        ],
        "edges": [{"source": "S", "target": "F"}],
    }
    adapter = make_adapter([bp], registry={"flaky": flaky})
    client = make_client([bp])
    for _ in range(2):  # the second run retries too: nothing was rewritten to 1 attempt
        handle = await client.start("queue-retry")
        result = await handle.result(20)
        assert result.status == "completed"
        assert [a for r, a in attempts if r == handle.run_id] == [1, 2, 1, 2]
    assert adapter.compiled_for("queue-retry").nodes[1].max_attempts == 2
    assert adapter.runtime.get_blueprint("queue-retry").nodes[1].config.max_retries == 2


async def test_defect_F_final_status_is_published_exactly_once(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    """7.2-F / Appendix B 'A fails, B->C all-join': one 'failed' with A's reason, never
    overwritten (Flowcraft published A's failure, then C's 'poisoned predecessor')."""
    bp = {
        "id": "poison",
        "nodes": [
            {"id": "A", "uses": "boom", "params": {"message": "A broke"}},
            {"id": "B", "uses": "echo"},
            {"id": "C", "uses": "echo"},
        ],
        "edges": [{"source": "A", "target": "C"}, {"source": "B", "target": "C"}],
    }
    make_adapter([bp])
    client = make_client([bp])
    handle, watcher, seen = await start_and_watch(
        client, redis_client, "poison", "poison-" + client.queue_name
    )
    result = await handle.result(20)
    await asyncio.sleep(0.3)
    await stop(watcher)
    assert result.status == "failed"
    assert "Node 'A' execution failed" in result.errors[0].message
    assert len(seen) == 1
    assert "_outputs.C" not in result.context
    assert [k async for k in redis_client.scan_iter(match=f"flowcraft:fanin:*{handle.run_id}*")] == []


async def test_defect_G_reconcile_never_starts_an_untaken_branch(
    make_adapter: Any, make_client: Any, redis_client: Any, key_prefix: str
) -> None:
    """7.2-G / Appendix B 'reconcile after router output': after the router took 'approve' and
    approve's queued job was lost, reconcile puts back approve's job only; the finished run is
    then skipped."""
    from bullflow.adapter import BullMQAdapter
    from bullflow.coordination import NodeCommit, RedisCoordinationStore

    bp = {
        "id": "router",
        "nodes": [
            {"id": "R", "uses": "route", "params": {"action": "approve"}},
            {"id": "approve", "uses": "echo"},
            {"id": "reject", "uses": "echo"},
        ],
        "edges": [
            {"source": "R", "target": "approve", "action": "approve"},
            {"source": "R", "target": "reject", "action": "reject"},
        ],
    }
    client = make_client([bp])
    compiled = client.compiled("router")
    handle = await client.start("router")
    store = RedisCoordinationStore(redis_client, key_prefix)
    # A worker ran R and committed it (taking the 'approve' edge, index 0)...
    commit = NodeCommit(handle.run_id, compiled.content_hash, 0, 0, taken=[0], writes=[("_outputs.R", '"r"')])
    assert (await store.complete_node(commit)).enqueued == 1
    # ...and approve's queued job was lost.
    prefix = keys.queue_key_prefix(key_prefix)
    approve_job = keys.job_id(handle.run_id, "approve")
    await redis_client.delete(prefix + approve_job)
    await redis_client.lrem(prefix + "wait", 0, approve_job)
    await redis_client.lrem(prefix + "wait", 0, keys.job_id(handle.run_id, "R"))
    adapter = BullMQAdapter(blueprints=[bp], connection=client.settings, queue_name=key_prefix)
    reconciler = create_bullmq_reconciler(adapter=adapter, redis=redis_client, stalled_threshold_seconds=0)
    await asyncio.sleep(0.01)
    stats = await reconciler.run()  # (the session's server holds other tests' runs too)
    assert stats.stalled_runs >= 1 and stats.reconciled_runs >= 1
    assert await redis_client.lrange(prefix + "wait", 0, -1) == [approve_job.encode()]
    assert await redis_client.exists(prefix + keys.job_id(handle.run_id, "reject")) == 0
    make_adapter([bp])
    result = await handle.result(20)
    assert result.status == "completed"
    assert "_outputs.approve" in result.context and "_outputs.reject" not in result.context
    await create_bullmq_reconciler(adapter=adapter, redis=redis_client, stalled_threshold_seconds=0).run()
    assert await redis_client.lrange(prefix + "wait", 0, -1) == []  # finished runs are left alone


async def test_defect_H_batch_workers_run(make_adapter: Any, make_client: Any) -> None:
    """7.2-H / Appendix B '.batch': every item runs as its own job and the gather sees them."""
    bp = {
        "id": "batch",
        "nodes": [
            {"id": "items", "uses": "echo", "params": {"value": [1, 2, 3, 4]}},
            {
                "id": "b_scatter",
                "uses": "batch-scatter",
                "inputs": "items",
                "params": {"workerUsesKey": "double", "gatherNodeId": "b_gather"},
            },
            {
                "id": "b_gather",
                "uses": "batch-gather",
                "params": {"gatherNodeId": "b_gather", "outputKey": "res"},
            },
        ],
        "edges": [{"source": "items", "target": "b_scatter"}, {"source": "b_scatter", "target": "b_gather"}],
    }
    make_adapter([bp])
    result = await (await make_client([bp]).start("batch")).result(20)
    assert result.status == "completed", result.errors
    assert result.context["res"] == [2, 4, 6, 8]


async def test_defect_I_loops_run_distributed(make_adapter: Any, make_client: Any) -> None:
    """7.2-I / Appendix B '.loop': a loop body runs once per iteration, each its own job."""
    bp = {
        "id": "loop",
        "nodes": [
            {"id": "init", "uses": "setter", "params": {"values": {"counter": 0}}},
            {"id": "body", "uses": "increment"},
            {"id": "ctl", "uses": "loop-controller", "params": {"condition": "counter < 3"}},
            {"id": "end", "uses": "echo"},
        ],
        "edges": [
            {"source": "init", "target": "ctl"},
            {"source": "body", "target": "ctl"},
            {"source": "ctl", "target": "body", "action": "continue"},
            {"source": "ctl", "target": "end", "action": "break"},
        ],
    }
    make_adapter([bp])
    result = await (await make_client([bp]).start("loop")).result(20)
    assert result.status == "completed", result.errors
    assert result.context["counter"] == 3
    assert "_outputs.end" in result.context


async def test_appendix_b_linear_chain_state_and_ttl(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    """Appendix B 'linear A->B->S': the state hash holds Flowcraft's JSON fields."""
    bp = {
        "id": "lin",
        "nodes": [
            {"id": "A", "uses": "echo", "params": {"value": "A"}},
            {"id": "B", "uses": "echo"},
            {"id": "S", "uses": "setter", "params": {"values": {"shared": {"n": 1}}}},
        ],
        "edges": [{"source": "A", "target": "B"}, {"source": "B", "target": "S"}],
    }
    make_adapter([bp])
    handle = await make_client([bp]).start("lin", {"topic": "x"})
    result = await handle.result(20)
    state = await redis_client.hgetall(keys.state_key(handle.run_id))
    assert state[b"topic"] == b'"x"' and state[b"blueprintId"] == b'"lin"'
    assert state[b"blueprintVersion"] == b"null"
    assert state[b"_outputs.A"] == b'"A"' and state[b"_inputs.B"] == b'"A"'
    assert state[b"shared"] == b'{"n":1}'
    assert result.context["_outputs.S"] == "set"


async def test_appendix_b_config_fallback_is_not_a_start_node(make_adapter: Any, make_client: Any) -> None:
    """Appendix B 'config fallback F->G, F->N': G runs only as F's fallback, N after it."""
    ran: list[str] = []

    def g(ctx: NodeContext) -> str:
        ran.append("G")
        return "from G"

    bp = {
        "id": "fb",
        "nodes": [
            {"id": "F", "uses": "boom", "config": {"fallback": "G"}},
            {"id": "G", "uses": "g"},
            {"id": "N", "uses": "echo"},
        ],
        "edges": [{"source": "F", "target": "N"}],
    }
    make_adapter([bp], registry={"g": g})
    result = await (await make_client([bp]).start("fb")).result(20)
    assert result.status == "completed"
    assert ran == ["G"]
    assert result.context["_outputs.N"] == "N(from G)"


async def test_appendix_b_wait_node_then_reconcile_changes_nothing(
    make_adapter: Any, make_client: Any, redis_client: Any
) -> None:
    """Appendix B 'wait node then reconcile': the run is awaiting; reconcile leaves it alone."""
    bp = {
        "id": "w",
        "nodes": [{"id": "W", "uses": "wait"}, {"id": "N", "uses": "echo"}],
        "edges": [{"source": "W", "target": "N"}],
    }
    adapter = make_adapter([bp])
    handle = await make_client([bp]).start("w")
    assert (await handle.result(20)).status == "awaiting"
    before = await redis_client.hgetall(keys.run_key(handle.run_id))
    await asyncio.sleep(0.01)
    await create_bullmq_reconciler(adapter=adapter, redis=redis_client, stalled_threshold_seconds=0).run()
    assert await redis_client.hgetall(keys.run_key(handle.run_id)) == before
    assert (await handle.client.status(handle.run_id)).status == "awaiting"
    await handle.resume(output="go")
    result = await handle.result(20)
    assert result.status == "completed"
    assert result.context["_outputs.N"] == "N(go)"


async def test_appendix_b_subflow(make_adapter: Any, make_client: Any) -> None:
    parent = {
        "id": "p",
        "nodes": [
            {"id": "S", "uses": "subflow", "params": {"blueprintId": "child"}},
            {"id": "after", "uses": "echo"},
        ],
        "edges": [{"source": "S", "target": "after"}],
    }
    child = {
        "id": "child",
        "nodes": [{"id": "c1", "uses": "echo", "params": {"value": "inner"}}],
        "edges": [],
    }
    make_adapter([parent, child])
    result = await (await make_client([parent, child]).start("p")).result(20)
    assert result.status == "completed"
    assert result.context["_outputs.S"] == "inner"
    assert result.context["_outputs.after"] == "after(inner)"


async def test_node_result_action_and_context_writes(make_adapter: Any, make_client: Any) -> None:
    def pick(ctx: NodeContext) -> NodeResult:
        return NodeResult(output={"score": 7}, action="high")

    bp = {
        "id": "pick",
        "nodes": [{"id": "P", "uses": "pick"}, {"id": "H", "uses": "echo"}, {"id": "L", "uses": "echo"}],
        "edges": [
            {
                "source": "P",
                "target": "H",
                "action": "high",
                "condition": "P.score > 5",
                "transform": "input.score * 2",
            },
            {"source": "P", "target": "L", "action": "low"},
        ],
    }
    make_adapter([bp], registry={"pick": pick})
    result = await (await make_client([bp]).start("pick")).result(20)
    assert result.context["_outputs.H"] == "H(14)"
    assert "_outputs.L" not in result.context


async def test_a_clients_job_for_a_fallback_only_node_never_runs_it(
    make_adapter: Any, make_client: Any, redis_client: Any, redis_server: str, key_prefix: str
) -> None:
    """A Flowcraft-style client enqueues every node without incoming edges, fallback-only ones
    too. Such a job for a fallback node that the run itself made ready must not run it a second
    time: only the run's own job (<runId>_<nodeId>) runs a node that is not a start node."""
    from bullflow.coordination import NodeCommit, RedisCoordinationStore

    ran: list[str] = []
    bp = {
        "id": "fb-start",
        "nodes": [
            {"id": "A", "uses": "echo"},
            {"id": "B", "uses": "boom", "config": {"fallback": "F"}},
            {"id": "F", "uses": "f"},
        ],
        "edges": [{"source": "A", "target": "B"}],
    }
    client = make_client([bp])
    compiled = client.compiled("fb-start")
    handle = await client.start("fb-start")
    store = RedisCoordinationStore(redis_client, key_prefix)
    g = compiled.content_hash
    assert (
        await store.complete_node(NodeCommit(handle.run_id, g, 0, 0, writes=[("_outputs.A", '"a"')]))
    ).committed
    assert (await store.complete_node(NodeCommit(handle.run_id, g, 1, 0, mode="fallback"))).committed
    port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    queue = Queue(key_prefix, {"connection": {"host": "127.0.0.1", "port": port, "socket_timeout": None}})
    try:  # the client's own start job for F, after the run made F ready
        await queue.add("executeNode", {"runId": handle.run_id, "blueprintId": "fb-start", "nodeId": "F"})
    finally:
        await queue.close()
    prefix = keys.queue_key_prefix(key_prefix)
    for job in (keys.job_id(handle.run_id, "A"), keys.job_id(handle.run_id, "B")):
        await redis_client.lrem(prefix + "wait", 0, job)  # already committed above

    async def f(ctx: NodeContext) -> str:
        ran.append("F")
        await asyncio.sleep(0.3)  # both jobs are taken while F runs
        return "from F"

    make_adapter([bp], registry={"f": f})
    result = await handle.result(20)
    await asyncio.sleep(0.2)
    assert result.status == "completed"
    assert ran == ["F"]
