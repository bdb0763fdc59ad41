"""Spec Appendix A: the acceptance fixtures, in blueprint (JSON) form, with the values given there.
Where bullflow fixes a Flowcraft defect the test says so and asserts the fixed behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from bullflow import (
    CancellationSignal,
    FlowRuntime,
    InfiniteLoopError,
    NodeContext,
    NodeResult,
    StrictModeError,
)


def ret(value: Any) -> Any:
    return lambda ctx: value


def act(action: str, value: Any) -> Any:
    return lambda ctx: NodeResult(output=value, action=action)


async def test_a1_linear_default_input() -> None:
    bp = {
        "id": "linear",
        "nodes": [{"id": "A", "uses": "a"}, {"id": "B", "uses": "b"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    rt = FlowRuntime(registry={"a": ret("resultA"), "b": lambda ctx: ctx.input + "_B"})
    result = await rt.run(bp)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "resultA_B"
    assert result.context["B"] == "resultA_B"


async def test_a2_fan_in_default_input_is_last_completed_predecessor() -> None:
    bp = {
        "id": "fan",
        "nodes": [{"id": x, "uses": x.lower()} for x in "ABCD"],
        "edges": [{"source": x, "target": "D"} for x in "ABC"],
    }
    rt = FlowRuntime(
        registry={"a": ret("A"), "b": ret("B"), "c": ret("C"), "d": lambda ctx: f"input was {ctx.input}"}
    )
    assert (await rt.run(bp)).context["_outputs.D"] == "input was C"


async def test_a3_action_routing_with_default_edge() -> None:
    bp = {
        "id": "default",
        "nodes": [{"id": "A", "uses": "a"}, {"id": "B", "uses": "b"}, {"id": "C", "uses": "c"}],
        "edges": [{"source": "A", "target": "B", "action": "known"}, {"source": "A", "target": "C"}],
    }
    rt = FlowRuntime(registry={"a": act("unknown", "A"), "b": ret("B"), "c": ret("C")})
    result = await rt.run(bp)
    assert "_outputs.B" not in result.context
    assert result.context["_outputs.C"] == "C"


CONDITIONAL_ROUTING = {
    "id": "conditional-routing",
    "nodes": [
        {"id": "route", "uses": "route"},
        {"id": "autoApprove", "uses": "x"},
        {"id": "waitManager", "uses": "y"},
        {"id": "reject", "uses": "z"},
    ],
    "edges": [
        {"source": "route", "target": "autoApprove", "condition": "route.total < 500"},
        {
            "source": "route",
            "target": "waitManager",
            "condition": "route.total >= 500 && route.total <= 2000",
        },
        {"source": "route", "target": "reject", "condition": "route.total > 2000"},
    ],
}


async def route(ctx: NodeContext) -> dict[str, int]:
    await ctx.set("total", 1665)
    return {"total": 1665}


async def test_a4_mutually_exclusive_conditions() -> None:
    rt = FlowRuntime(registry={"route": route, "x": ret("x"), "y": ret({"status": "pending"}), "z": ret("z")})
    result = await rt.run(CONDITIONAL_ROUTING)
    assert result.status == "completed"
    assert result.context["_outputs.waitManager"] == {"status": "pending"}
    assert "_outputs.autoApprove" not in result.context and "_outputs.reject" not in result.context


async def test_a5_wait_and_resume() -> None:
    bp = {
        **CONDITIONAL_ROUTING,
        "nodes": [
            *(n for n in CONDITIONAL_ROUTING["nodes"] if n["id"] != "waitManager"),  # type: ignore[union-attr]
            {"id": "waitManager", "uses": "wait"},
            {"id": "processApproval", "uses": "p"},
        ],
        "edges": [*CONDITIONAL_ROUTING["edges"], {"source": "waitManager", "target": "processApproval"}],  # type: ignore[misc]
    }
    rt = FlowRuntime(
        registry={
            "route": route,
            "x": ret("x"),
            "z": ret("z"),
            "p": lambda ctx: {"status": "approved" if ctx.input["approved"] else "rejected"},
        }
    )
    paused = await rt.run(bp)
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["waitManager"]
    resumed = await rt.resume(bp, paused.serialized_context, node_id="waitManager", output={"approved": True})
    assert resumed.status == "completed"
    assert resumed.context["_outputs.processApproval"] == {"status": "approved"}
    assert "_outputs.autoApprove" not in resumed.context and "_outputs.reject" not in resumed.context
    assert "_awaitingNodeIds" not in resumed.context


SIMPLE_LOOP = {
    "id": "simple-loop-exit-test",
    "nodes": [
        {"id": "initialize", "uses": "init"},
        {"id": "increment", "uses": "inc"},
        {
            "id": "counter",
            "uses": "loop-controller",
            "params": {"condition": "count < 5"},
            "config": {"joinStrategy": "any"},
        },
        {"id": "finalize", "uses": "fin"},
    ],
    "edges": [
        {"source": "counter", "target": "finalize", "action": "break", "transform": 'context["increment"]'},
        {"source": "increment", "target": "counter"},
        {
            "source": "counter",
            "target": "increment",
            "action": "continue",
            "transform": 'context["increment"]',
        },
        {"source": "initialize", "target": "counter"},
    ],
}


async def test_a6_loop_counts_to_five() -> None:
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

    result = await FlowRuntime(registry={"init": init, "inc": inc, "fin": fin}).run(SIMPLE_LOOP)
    assert result.status == "completed"
    assert result.context["count"] == 5
    assert result.context["_outputs.finalize"] == "Finalized at 5"
    # increment's input on iteration k is iteration k-1's output (the transform); None on the first
    assert inputs == [None, 1, 2, 3, 4]


EARLY_EXIT = {
    "id": "early",
    "nodes": [
        {"id": "init", "uses": "init"},
        {"id": "body", "uses": "body"},
        {
            "id": "myLoop",
            "uses": "loop-controller",
            "params": {"condition": "counter < 10"},
            "config": {"joinStrategy": "any"},
        },
        {"id": "specialExit", "uses": "special"},
        {"id": "end", "uses": "end"},
    ],
    "edges": [
        {"source": "myLoop", "target": "end", "action": "break", "transform": 'context["body"]'},
        {
            "source": "myLoop",
            "target": "specialExit",
            "action": "break",
            "condition": "counter === 5",
            "transform": 'context["body"]',
        },
        {"source": "init", "target": "myLoop"},
        {"source": "body", "target": "myLoop"},
        {"source": "myLoop", "target": "body", "action": "continue", "transform": 'context["body"]'},
    ],
}


async def test_a7_early_loop_exit_through_a_conditional_edge() -> None:
    special = 0

    async def init(ctx: NodeContext) -> None:
        await ctx.set("counter", 0)

    async def body(ctx: NodeContext) -> None:
        await ctx.set("counter", await ctx.get("counter") + 1)

    def special_exit(ctx: NodeContext) -> str:
        nonlocal special
        special += 1
        return "exit"

    bp = EARLY_EXIT
    rt = FlowRuntime(registry={"init": init, "body": body, "special": special_exit, "end": ret("end")})
    result = await rt.run(bp)
    assert special == 1
    assert result.context["counter"] == 5
    assert result.status == "completed"


async def test_a8_infinite_loop_guard() -> None:
    bp = {
        "id": "forever",
        "nodes": [
            {"id": "start", "uses": "noop"},
            {"id": "work", "uses": "noop"},
            {
                "id": "loop",
                "uses": "loop-controller",
                "params": {"condition": "true"},
                "config": {"joinStrategy": "any"},
            },
        ],
        "edges": [
            {"source": "start", "target": "loop"},
            {"source": "work", "target": "loop"},
            {"source": "loop", "target": "work", "action": "continue"},
        ],
    }
    with pytest.raises(
        InfiniteLoopError, match="Traversal exceeded maximum iterations, possible infinite loop"
    ):
        await FlowRuntime(registry={"noop": ret(None)}).run(bp)


async def test_a8_guard_limit_is_configurable() -> None:
    bp = {
        "id": "bounded",
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
    with pytest.raises(InfiniteLoopError):
        await FlowRuntime(registry={"noop": ret(None)}, max_waves=50).run(bp)


RETRY_FALLBACK = {
    "id": "retry-fallback-flow",
    "nodes": [
        {"id": "start", "uses": "s"},
        {"id": "failingNode", "uses": "f", "config": {"maxRetries": 3, "fallback": "fallbackNode"}},
        {"id": "fallbackNode", "uses": "fb"},
        {"id": "endNode", "uses": "e"},
    ],
    "edges": [
        {"source": "start", "target": "failingNode"},
        {"source": "failingNode", "target": "endNode"},
    ],
}


async def test_a9_retry_and_config_fallback_with_edge_inheritance() -> None:
    calls = {"f": 0, "fb": 0}

    def f(ctx: NodeContext) -> None:
        calls["f"] += 1
        raise RuntimeError("boom")

    def fb(ctx: NodeContext) -> str:
        calls["fb"] += 1
        return "fallback-success"

    bp = RETRY_FALLBACK
    rt = FlowRuntime(registry={"s": ret("s"), "f": f, "fb": fb, "e": lambda ctx: "end-with-" + ctx.input})
    result = await rt.run(bp)
    assert calls == {"f": 3, "fb": 1}
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.failingNode"] is None
    assert result.context["_outputs.endNode"] == "end-with-fallback-success"


BATCH = {
    "id": "batch-test",
    "nodes": [
        {"id": "prepare", "uses": "p"},
        {"id": "verify", "uses": "v"},
        {
            "id": "test-batch_scatter",
            "uses": "batch-scatter",
            "inputs": "prepare",
            "params": {"workerUsesKey": "w", "outputKey": "results", "gatherNodeId": "test-batch_gather"},
        },
        {
            "id": "test-batch_gather",
            "uses": "batch-gather",
            "params": {"outputKey": "results", "gatherNodeId": "test-batch_gather"},
            "config": {"joinStrategy": "all"},
        },
    ],
    "edges": [
        {"source": "prepare", "target": "test-batch_scatter"},
        {"source": "test-batch_gather", "target": "verify"},
        {"source": "test-batch_scatter", "target": "test-batch_gather"},
    ],
}


async def test_a10_batch_scatter_gather() -> None:
    worker_calls = 0
    verified: list[Any] = []

    def w(ctx: NodeContext) -> str:
        nonlocal worker_calls
        worker_calls += 1
        return f"processed_{ctx.input['id']}_{ctx.input['data']}"

    def v(ctx: NodeContext) -> None:
        verified.append(ctx.input)

    items = [{"id": 1, "data": "item1"}, {"id": 2, "data": "item2"}, {"id": 3, "data": "item3"}]
    result = await FlowRuntime(registry={"p": ret(items), "w": w, "v": v}).run(BATCH)
    expected = ["processed_1_item1", "processed_2_item2", "processed_3_item3"]
    assert result.status == "completed"
    assert worker_calls == 3
    assert verified == [expected]
    assert result.context["results"] == expected


SUBFLOW_PARENT = {
    "id": "parent",
    "nodes": [
        {"id": "input", "uses": "in"},
        {
            "id": "test-subflow",
            "uses": "subflow",
            "params": {
                "blueprintId": "subflow-test",
                "inputs": {"input": "input"},
                "outputs": {"subflow_output": "process"},
            },
        },
        {"id": "output", "uses": "out"},
    ],
    "edges": [
        {"source": "input", "target": "test-subflow"},
        {"source": "test-subflow", "target": "output"},
    ],
}


async def test_a11_subflow_with_input_and_output_mapping() -> None:
    parent = SUBFLOW_PARENT
    child = {
        "id": "subflow-test",
        "nodes": [{"id": "process", "uses": "proc", "inputs": "input"}],
        "edges": [],
    }
    rt = FlowRuntime(
        registry={
            "in": ret({"value": "test"}),
            "proc": lambda ctx: "processed_" + ctx.input["value"],
            "out": ret("done"),
        },
        blueprints=[child],
    )
    result = await rt.run(parent)
    assert result.status == "completed"
    assert result.context["subflow_output"] == "processed_test"


CONCURRENT_WAITS = {
    "id": "concurrent-waits",
    "nodes": [
        {"id": "start", "uses": "start", "inputs": "input"},
        {"id": "wait1", "uses": "wait"},
        {"id": "wait2", "uses": "wait"},
        {"id": "branch1", "uses": "b1", "inputs": "start"},
        {"id": "branch2", "uses": "b2", "inputs": "start"},
        {"id": "gather", "uses": "gather", "inputs": {"r1": "branch1", "r2": "branch2"}},
    ],
    "edges": [
        {"source": "start", "target": "wait1"},
        {"source": "start", "target": "wait2"},
        {"source": "wait1", "target": "branch1"},
        {"source": "wait2", "target": "branch2"},
        {"source": "branch1", "target": "gather"},
        {"source": "branch2", "target": "gather"},
    ],
}


async def test_a12_concurrent_waits_and_gather_with_object_inputs() -> None:
    bp = CONCURRENT_WAITS
    rt = FlowRuntime(
        registry={
            "start": lambda ctx: ctx.input,
            "b1": lambda ctx: f"Branch 1: {ctx.input}",
            "b2": lambda ctx: f"Branch 2: {ctx.input}",
            "gather": lambda ctx: {"combined": f"Results: {ctx.input['r1']}, {ctx.input['r2']}"},
        }
    )
    paused = await rt.run(bp, {"input": 42})
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["wait1", "wait2"]
    first = await rt.resume(bp, paused, node_id="wait1")
    assert first.status == "awaiting"
    assert first.context["_awaitingNodeIds"] == ["wait2"]
    done = await rt.resume(bp, first, node_id="wait2")
    assert done.status == "completed"
    assert done.context["_outputs.gather"]["combined"] == "Results: Branch 1: 42, Branch 2: 42"


async def test_a13_cancellation_inside_a_node() -> None:
    signal = CancellationSignal()

    def a(ctx: NodeContext) -> str:
        signal.cancel()
        return "A"

    bp = {
        "id": "c",
        "nodes": [{"id": "A", "uses": "a"}, {"id": "B", "uses": "b"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    result = await FlowRuntime(registry={"a": a, "b": ret("B")}).run(bp, signal=signal)
    assert result.status == "cancelled"
    # Defect 7.2-N: Flowcraft returned context {}; bullflow keeps what was committed.
    assert result.context == {"_outputs.A": "A", "A": "A"}


async def test_a14_strict_mode_and_non_strict_cycle() -> None:
    calls: list[str] = []

    def node(ctx: NodeContext) -> None:
        calls.append(ctx.node_id)

    bp = {
        "id": "cyc",
        "nodes": [{"id": "A", "uses": "n"}, {"id": "B", "uses": "n"}],
        "edges": [{"source": "A", "target": "B"}, {"source": "B", "target": "A"}],
    }
    rt = FlowRuntime(registry={"n": node})
    with pytest.raises(StrictModeError, match="Cycles are not allowed"):
        await rt.run(bp, strict=True)
    result = await rt.run(bp)
    assert result.status == "completed"
    assert calls == ["A", "B"]
