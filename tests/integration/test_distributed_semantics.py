"""Everything the in-process runtime does, in distributed mode: real bullmq workers (in this
process, so node functions can be closures) against the session redis-server. The Appendix A
fixtures are the in-process suite's (tests/test_appendix_a.py), with the same expected values."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tests.test_appendix_a import (
    BATCH,
    CONCURRENT_WAITS,
    CONDITIONAL_ROUTING,
    EARLY_EXIT,
    RETRY_FALLBACK,
    SIMPLE_LOOP,
    SUBFLOW_PARENT,
    act,
    ret,
    route,
)

from bullflow import NodeContext, keys

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["fast", "chained", "bullmq"])
def worker_loop(request: pytest.FixtureRequest) -> str:
    """Every case runs on every worker loop: fast, chained and the stock bullmq Worker."""
    return str(request.param)


async def run_distributed(
    make_adapter: Any,
    make_client: Any,
    blueprint: dict[str, Any],
    registry: dict[str, Any],
    context: dict[str, Any] | None = None,
    *,
    extra: list[dict[str, Any]] = (),  # type: ignore[assignment]
    timeout: float = 20,
    **adapter_options: Any,
) -> Any:
    blueprints = [blueprint, *extra]
    make_adapter(blueprints, registry=registry, **adapter_options)
    client = make_client(blueprints)
    handle = await client.start(blueprint["id"], context)
    return await handle.result(timeout)


async def test_a1_linear_default_input(make_adapter: Any, make_client: Any) -> None:
    bp = {
        "id": "linear",
        "nodes": [{"id": "A", "uses": "a"}, {"id": "B", "uses": "b"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    result = await run_distributed(
        make_adapter, make_client, bp, {"a": ret("resultA"), "b": lambda ctx: ctx.input + "_B"}
    )
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "resultA_B"
    assert result.context["B"] == "resultA_B"


async def test_a2_fan_in_all_join_runs_once_with_a_predecessor_output(
    make_adapter: Any, make_client: Any
) -> None:
    bp = {
        "id": "fan",
        "nodes": [{"id": x, "uses": x.lower()} for x in "ABCD"],
        "edges": [{"source": x, "target": "D"} for x in "ABC"],
    }
    calls: list[Any] = []

    def d(ctx: NodeContext) -> str:
        calls.append(ctx.input)
        return f"input was {ctx.input}"

    result = await run_distributed(
        make_adapter, make_client, bp, {"a": ret("A"), "b": ret("B"), "c": ret("C"), "d": d}
    )
    assert result.status == "completed"
    assert len(calls) == 1 and calls[0] in ("A", "B", "C")
    assert result.context["_outputs.D"] == f"input was {calls[0]}"


async def test_a3_action_routing_with_default_edge(make_adapter: Any, make_client: Any) -> None:
    bp = {
        "id": "default",
        "nodes": [{"id": "A", "uses": "a"}, {"id": "B", "uses": "b"}, {"id": "C", "uses": "c"}],
        "edges": [{"source": "A", "target": "B", "action": "known"}, {"source": "A", "target": "C"}],
    }
    result = await run_distributed(
        make_adapter, make_client, bp, {"a": act("unknown", "A"), "b": ret("B"), "c": ret("C")}
    )
    assert result.status == "completed"
    assert "_outputs.B" not in result.context
    assert result.context["_outputs.C"] == "C"


async def test_a4_conditions_see_the_node_id_alias(make_adapter: Any, make_client: Any) -> None:
    registry = {"route": route, "x": ret("x"), "y": ret({"status": "pending"}), "z": ret("z")}
    result = await run_distributed(make_adapter, make_client, CONDITIONAL_ROUTING, registry)
    assert result.status == "completed"
    assert result.context["_outputs.waitManager"] == {"status": "pending"}
    assert "_outputs.autoApprove" not in result.context and "_outputs.reject" not in result.context


async def test_a5_wait_and_resume_with_output(make_adapter: Any, make_client: Any) -> None:
    bp = {
        **CONDITIONAL_ROUTING,
        "id": "hitl",
        "nodes": [
            *(n for n in CONDITIONAL_ROUTING["nodes"] if n["id"] != "waitManager"),  # type: ignore[union-attr]
            {"id": "waitManager", "uses": "wait"},
            {"id": "processApproval", "uses": "p"},
        ],
        "edges": [*CONDITIONAL_ROUTING["edges"], {"source": "waitManager", "target": "processApproval"}],  # type: ignore[misc]
    }
    registry = {
        "route": route,
        "x": ret("x"),
        "z": ret("z"),
        "p": lambda ctx: {"status": "approved" if ctx.input["approved"] else "rejected"},
    }
    make_adapter([bp], registry=registry)
    client = make_client([bp])
    handle = await client.start("hitl")
    paused = await handle.result(20)
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["waitManager"]
    assert await handle.resume("waitManager", output={"approved": True}) == "waitManager"
    done = await handle.result(20)
    assert done.status == "completed"
    assert done.context["_outputs.processApproval"] == {"status": "approved"}
    assert "_awaitingNodeIds" not in done.context
    assert "_outputs.autoApprove" not in done.context and "_outputs.reject" not in done.context


async def test_wait_resume_routes_by_action(make_adapter: Any, make_client: Any) -> None:
    """Defect 7.2-G/K: the resume action picks the branch; the other branch never runs."""
    bp = {
        "id": "approve",
        "nodes": [
            {"id": "ask", "uses": "wait"},
            {"id": "approve", "uses": "a"},
            {"id": "reject", "uses": "r"},
        ],
        "edges": [
            {"source": "ask", "target": "approve", "action": "approve"},
            {"source": "ask", "target": "reject", "action": "reject"},
        ],
    }
    make_adapter([bp], registry={"a": ret("approved"), "r": ret("rejected")})
    client = make_client([bp])
    handle = await client.start("approve")
    assert (await handle.result(20)).status == "awaiting"
    await handle.resume(action="reject", output={"by": "alice"})
    done = await handle.result(20)
    assert done.status == "completed"
    assert done.context["_outputs.reject"] == "rejected"
    assert done.context["_outputs.ask"] == {"by": "alice"}
    assert "_outputs.approve" not in done.context
    with pytest.raises(Exception, match="not in an awaiting state"):
        await handle.resume("ask")


async def test_a6_loop_counts_to_five_with_per_iteration_jobs(
    make_adapter: Any, make_client: Any, redis_client: Any, key_prefix: str
) -> None:
    inputs: list[Any] = []

    async def init(ctx: NodeContext) -> None:
        await ctx.set("count", 0)

    async def inc(ctx: NodeContext) -> int:
        inputs.append(ctx.input)
        count = await ctx.get("count") + 1
        await ctx.set("count", count)
        return count

    async def fin(ctx: NodeContext) -> str:
        return f"Finalized at {await ctx.get('count')}"

    make_adapter([SIMPLE_LOOP], registry={"init": init, "inc": inc, "fin": fin})
    client = make_client([SIMPLE_LOOP])
    handle = await client.start(SIMPLE_LOOP["id"])
    result = await handle.result(20)
    assert result.status == "completed", result.errors
    assert result.context["count"] == 5
    assert result.context["_outputs.finalize"] == "Finalized at 5"
    assert inputs == [None, 1, 2, 3, 4]
    prefix = keys.queue_key_prefix(key_prefix)
    for n in range(5):
        job = keys.job_id(handle.run_id, "increment", n)
        assert await redis_client.hget(prefix + job, "name") == b"executeNode", job


async def test_a7_early_loop_exit_through_a_conditional_edge(make_adapter: Any, make_client: Any) -> None:
    special: list[int] = []

    async def init(ctx: NodeContext) -> None:
        await ctx.set("counter", 0)

    async def body(ctx: NodeContext) -> None:
        await ctx.set("counter", await ctx.get("counter") + 1)

    bp = EARLY_EXIT
    registry = {
        "init": init,
        "body": body,
        "special": lambda ctx: special.append(1) or "exit",
        "end": ret("end"),
    }
    result = await run_distributed(make_adapter, make_client, bp, registry)
    assert special == [1]
    assert result.context["counter"] == 5
    assert result.status == "completed"


async def test_a8_infinite_loop_guard_fails_the_run(make_adapter: Any, make_client: Any) -> None:
    bp = {
        "id": "forever",
        "nodes": [
            {"id": "start", "uses": "noop"},
            {"id": "work", "uses": "noop"},
            {"id": "loop", "uses": "loop-controller", "params": {"condition": "true"}},
        ],
        "edges": [
            {"source": "start", "target": "loop"},
            {"source": "work", "target": "loop"},
            {"source": "loop", "target": "work", "action": "continue"},
        ],
    }
    from bullflow.coordination import RunOptions

    make_adapter([bp], registry={"noop": ret(None)})
    client = make_client([bp], run_options=RunOptions(max_waves=30))
    result = await (await client.start("forever")).result(20)
    assert result.status == "failed"
    assert "Traversal exceeded maximum iterations, possible infinite loop" in result.errors[0].message


async def test_a9_queue_retries_then_config_fallback_inherits_edges(
    make_adapter: Any, make_client: Any
) -> None:
    calls = {"f": 0, "fb": 0}

    def f(ctx: NodeContext) -> None:
        calls["f"] += 1
        raise RuntimeError("boom")

    def fb(ctx: NodeContext) -> str:
        calls["fb"] += 1
        return "fallback-success"

    bp = RETRY_FALLBACK
    registry = {"s": ret("s"), "f": f, "fb": fb, "e": lambda ctx: "end-with-" + ctx.input}
    result = await run_distributed(make_adapter, make_client, bp, registry)
    assert calls == {"f": 3, "fb": 1}
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.failingNode"] is None
    assert result.context["_outputs.endNode"] == "end-with-fallback-success"


async def test_a10_batch_runs_one_job_per_item(
    make_adapter: Any, make_client: Any, redis_client: Any, key_prefix: str
) -> None:
    """Defect 7.2-H: Flowcraft's workers never ran batch items (gather got [])."""
    seen: list[Any] = []

    def w(ctx: NodeContext) -> str:
        seen.append(ctx.input)
        return f"processed_{ctx.input['id']}_{ctx.input['data']}"

    verified: list[Any] = []
    items = [{"id": 1, "data": "item1"}, {"id": 2, "data": "item2"}, {"id": 3, "data": "item3"}]
    make_adapter([BATCH], registry={"p": ret(items), "w": w, "v": lambda ctx: verified.append(ctx.input)})
    client = make_client([BATCH])
    handle = await client.start(BATCH["id"])
    result = await handle.result(20)
    expected = ["processed_1_item1", "processed_2_item2", "processed_3_item3"]
    assert result.status == "completed", result.errors
    assert sorted(seen, key=lambda x: x["id"]) == items
    assert verified == [expected]
    assert result.context["results"] == expected
    jobs = [
        k
        async for k in redis_client.scan_iter(match=f"{keys.queue_key_prefix(key_prefix)}{handle.run_id}_w_*")
    ]
    assert len(jobs) == 3


async def test_chunked_batch_runs_every_item(make_adapter: Any, make_client: Any) -> None:
    bp = {**BATCH, "id": "chunked", "nodes": [dict(n) for n in BATCH["nodes"]]}  # type: ignore[union-attr]
    bp["nodes"][2] = {**bp["nodes"][2], "params": {**bp["nodes"][2]["params"], "chunkSize": 2}}
    items = list(range(7))
    result = await run_distributed(
        make_adapter, make_client, bp, {"p": ret(items), "w": lambda ctx: ctx.input * 10, "v": ret(None)}
    )
    assert result.status == "completed", result.errors
    assert result.context["results"] == [i * 10 for i in items]


async def test_a11_subflow_with_input_and_output_mapping(make_adapter: Any, make_client: Any) -> None:
    parent = SUBFLOW_PARENT
    child = {
        "id": "subflow-test",
        "nodes": [{"id": "process", "uses": "proc", "inputs": "input"}],
        "edges": [],
    }
    registry = {
        "in": ret({"value": "test"}),
        "proc": lambda ctx: "processed_" + ctx.input["value"],
        "out": ret("done"),
    }
    result = await run_distributed(make_adapter, make_client, parent, registry, extra=[child])
    assert result.status == "completed", result.errors
    assert result.context["subflow_output"] == "processed_test"


async def test_a12_concurrent_waits_resumed_one_by_one(make_adapter: Any, make_client: Any) -> None:
    bp = CONCURRENT_WAITS
    registry = {
        "start": lambda ctx: ctx.input,
        "b1": lambda ctx: f"Branch 1: {ctx.input}",
        "b2": lambda ctx: f"Branch 2: {ctx.input}",
        "gather": lambda ctx: {"combined": f"Results: {ctx.input['r1']}, {ctx.input['r2']}"},
    }
    make_adapter([bp], registry=registry)
    client = make_client([bp])
    handle = await client.start("concurrent-waits", {"input": 42})
    paused = await handle.result(20)
    assert paused.status == "awaiting"
    assert sorted(paused.context["_awaitingNodeIds"]) == ["wait1", "wait2"]
    await handle.resume("wait1")
    first = await handle.result(20)
    assert first.status == "awaiting"
    assert first.context["_awaitingNodeIds"] == ["wait2"]
    await handle.resume("wait2")
    done = await handle.result(20)
    assert done.status == "completed"
    assert done.context["_outputs.gather"]["combined"] == "Results: Branch 1: 42, Branch 2: 42"


async def test_cancellation_signals_running_nodes_and_queued_ones_never_start(
    make_adapter: Any, make_client: Any
) -> None:
    started = asyncio.Event()
    saw_signal: list[bool] = []
    after: list[str] = []

    async def long(ctx: NodeContext) -> str:
        started.set()
        try:
            await asyncio.wait_for(ctx.signal.wait(), 10)
        finally:
            saw_signal.append(ctx.signal.cancelled)
        return "never committed"

    bp = {
        "id": "cancel",
        "nodes": [{"id": "L", "uses": "long"}, {"id": "N", "uses": "after"}],
        "edges": [{"source": "L", "target": "N"}],
    }
    make_adapter([bp], registry={"long": long, "after": lambda ctx: after.append("ran")})
    client = make_client([bp])
    handle = await client.start("cancel")
    await asyncio.wait_for(started.wait(), 10)
    assert await handle.cancel("user asked") is True
    result = await handle.result(10)
    assert result.status == "cancelled"
    assert result.errors[0].message == "user asked"
    await asyncio.sleep(0.3)
    assert saw_signal == [True]
    assert after == []
    assert await handle.cancel() is False  # a final status is never overwritten
    assert (await client.status(handle.run_id)).status == "cancelled"  # type: ignore[union-attr]


async def test_queue_retries_wait_for_the_backoff(make_adapter: Any, make_client: Any) -> None:
    """Defect 7.2-E: a failed attempt really retries, after the node's backoff."""
    attempts: list[tuple[int, float]] = []

    def flaky(ctx: NodeContext) -> str:
        attempts.append((ctx.attempt, time.monotonic()))
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return "ok"

    bp = {
        "id": "retry",
        "nodes": [
            {"id": "A", "uses": "a"},
            {
                "id": "F",
                "uses": "flaky",
                "config": {"maxRetries": 3, "retryDelay": 200, "backoff": "exponential"},
            },
        ],
        "edges": [{"source": "A", "target": "F"}],
    }
    result = await run_distributed(make_adapter, make_client, bp, {"a": ret("a"), "flaky": flaky})
    assert result.status == "completed"
    assert result.context["_outputs.F"] == "ok"
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert attempts[1][1] - attempts[0][1] >= 0.18
    assert attempts[2][1] - attempts[1][1] >= 0.38  # exponential: 200 ms, then 400 ms


async def test_per_attempt_timeout_then_retry(make_adapter: Any, make_client: Any) -> None:
    calls: list[int] = []

    async def sometimes_slow(ctx: NodeContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(5)
        return "fast"

    bp = {
        "id": "timeout",
        "nodes": [{"id": "T", "uses": "t", "config": {"timeout": 200, "maxRetries": 2}}],
        "edges": [],
    }
    result = await run_distributed(make_adapter, make_client, bp, {"t": sometimes_slow})
    assert result.status == "completed"
    assert calls == [1, 2]


async def test_timeout_on_the_last_attempt_fails_the_run(make_adapter: Any, make_client: Any) -> None:
    async def hang(ctx: NodeContext) -> None:
        await asyncio.sleep(5)

    bp = {"id": "timeout-fail", "nodes": [{"id": "T", "uses": "t", "config": {"timeout": 100}}], "edges": []}
    result = await run_distributed(make_adapter, make_client, bp, {"t": hang})
    assert result.status == "failed"
    assert "timed out after 100 ms" in result.errors[0].message


async def test_sleep_is_a_delayed_job(
    make_adapter: Any, make_client: Any, redis_client: Any, key_prefix: str
) -> None:
    bp = {
        "id": "nap",
        "nodes": [
            {"id": "A", "uses": "a"},
            {"id": "nap", "uses": "sleep", "params": {"duration": 600}},
            {"id": "B", "uses": "b"},
        ],
        "edges": [{"source": "A", "target": "nap"}, {"source": "nap", "target": "B"}],
    }
    make_adapter([bp], registry={"a": ret("a-out"), "b": lambda ctx: f"after {ctx.input}"})
    client = make_client([bp])
    started = time.monotonic()
    handle = await client.start("nap")
    await asyncio.sleep(0.3)
    delayed = await redis_client.zrange(keys.queue_key_prefix(key_prefix) + "delayed", 0, -1)
    assert delayed == [keys.job_id(handle.run_id, "nap", 1).encode()]
    result = await handle.result(20)
    assert result.status == "completed"
    assert time.monotonic() - started >= 0.55
    assert result.context["_outputs.B"] == "after a-out"


async def test_a_node_may_write_ten_thousand_keys(make_adapter: Any, make_client: Any) -> None:
    async def many(ctx: NodeContext) -> int:
        for i in range(10_000):
            await ctx.set(f"k{i}", i)
        return 10_000

    bp = {"id": "many", "nodes": [{"id": "M", "uses": "many"}], "edges": []}
    result = await run_distributed(make_adapter, make_client, bp, {"many": many})
    assert result.status == "completed", result.errors
    assert result.context["k9999"] == 9999 and result.context["_outputs.M"] == 10_000


async def test_a_wait_inside_a_subflow_resumes_through_its_parent_node(
    make_adapter: Any, make_client: Any
) -> None:
    parent = {
        "id": "outer",
        "nodes": [
            {
                "id": "S",
                "uses": "subflow",
                "params": {"blueprintId": "inner", "outputs": {"approval": "done"}},
            },
            {"id": "after", "uses": "after"},
        ],
        "edges": [{"source": "S", "target": "after"}],
    }
    child = {
        "id": "inner",
        "nodes": [{"id": "ask", "uses": "wait"}, {"id": "done", "uses": "done"}],
        "edges": [{"source": "ask", "target": "done"}],
    }
    registry = {
        "done": lambda ctx: {"approved": ctx.input},
        "after": lambda ctx: "after",
    }
    make_adapter([parent, child], registry=registry)
    client = make_client([parent, child])
    handle = await client.start("outer")
    paused = await handle.result(20)
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["S"]
    await handle.resume("S", output="yes")
    done = await handle.result(20)
    assert done.status == "completed", done.errors
    assert done.context["approval"] == {"approved": "yes"}
    assert done.context["_outputs.after"] == "after"
    assert "_subflowState.S" not in done.context
