"""Built-in nodes (spec §6.3): batch, loop, subflow, wait, sleep."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bullflow import Flow, FlowRuntime, InMemoryEventLogger, NodeContext


def const(value: Any) -> Any:
    return lambda ctx: value


# ----------------------------------------------------------------------------------- batch
async def test_batch_runs_the_worker_per_item_in_order() -> None:
    calls: list[Any] = []

    async def worker(ctx: NodeContext) -> str:
        calls.append(ctx.input)
        await asyncio.sleep(0.001 * (3 - ctx.input["id"]))  # finish out of order
        return f"processed_{ctx.input['id']}_{ctx.input['data']}"

    items = [{"id": 1, "data": "item1"}, {"id": 2, "data": "item2"}, {"id": 3, "data": "item3"}]
    flow = (
        Flow("batch")
        .node("prepare", const(items))
        .batch("b", worker, input_key="prepare", output_key="results")
        .node("verify", lambda ctx: ctx.input)
        .edge("prepare", "b")
        .edge("b", "verify")
    )
    events = InMemoryEventLogger()
    result = await flow.run(FlowRuntime(event_bus=events))
    expected = ["processed_1_item1", "processed_2_item2", "processed_3_item3"]
    assert result.status == "completed"
    assert len(calls) == 3
    assert result.context["_outputs.verify"] == expected
    assert result.context["results"] == expected
    assert events.find("batch:start") is not None
    assert events.find("batch:finish").payload["results"] == expected  # type: ignore[union-attr]


async def test_batch_of_an_empty_array_gathers_nothing() -> None:
    calls = 0

    def worker(ctx: NodeContext) -> None:
        nonlocal calls
        calls += 1

    flow = (
        Flow("empty")
        .node("prepare", const([]))
        .batch("b", worker, input_key="prepare", output_key="results")
        .node("verify", lambda ctx: ctx.input)
        .edge("prepare", "b")
        .edge("b", "verify")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert calls == 0
    assert result.context["_outputs.verify"] == []


async def test_a_failing_batch_worker_fails_the_run_and_the_gather_never_runs() -> None:
    def worker(ctx: NodeContext) -> int:
        if ctx.input == 2:
            raise ValueError("item 2 is bad")
        return int(ctx.input)

    flow = (
        Flow("bad-batch")
        .node("prepare", const([1, 2, 3]))
        .batch("b", worker, input_key="prepare", output_key="results")
        .node("verify", const("should not reach"))
        .edge("prepare", "b")
        .edge("b", "verify")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "failed"
    assert "execution failed" in result.errors[0].message
    assert "_outputs.verify" not in result.context
    assert "results" not in result.context


async def test_batch_input_must_be_an_array() -> None:
    flow = (
        Flow("not-array")
        .node("prepare", const("nope"))
        .batch("b", const(1), input_key="prepare")
        .edge("prepare", "b")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "failed"
    assert result.errors[0].message == "Input for batch-scatter node 'b_scatter' must be an array."


async def test_chunked_batch_runs_chunk_by_chunk_and_gathers_everything() -> None:
    """Defect 7.2-H (in-process half): Flowcraft's chunked batches gathered [] and then failed."""
    active = 0
    peak = 0

    async def worker(ctx: NodeContext) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.002)
        active -= 1
        return int(ctx.input) * 10

    flow = (
        Flow("chunks")
        .node("prepare", const(list(range(7))))
        .batch("b", worker, input_key="prepare", output_key="results", chunk_size=3)
        .node("verify", lambda ctx: ctx.input)
        .edge("prepare", "b")
        .edge("b", "verify")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed", result.errors
    assert result.context["_outputs.verify"] == [0, 10, 20, 30, 40, 50, 60]
    assert peak <= 3


# ------------------------------------------------------------------------------------ loops
async def test_loop_with_condition_true_and_no_exit_hits_the_guard() -> None:
    from bullflow import InfiniteLoopError

    flow = (
        Flow("forever")
        .node("start", const(None))
        .node("work", const(None))
        .loop("loop", start_node_id="work", end_node_id="work", condition="true")
        .edge("start", "loop")
    )
    with pytest.raises(InfiniteLoopError, match="Traversal exceeded maximum iterations"):
        await flow.run(FlowRuntime())


async def test_multi_node_loop_with_check_node() -> None:
    calls = 0

    async def init(ctx: NodeContext) -> None:
        await ctx.set("counter", 0)

    async def increment(ctx: NodeContext) -> None:
        nonlocal calls
        calls += 1
        await ctx.set("counter", await ctx.get("counter") + 1)

    flow = (
        Flow("multi")
        .node("init", init)
        .node("increment", increment)
        .node("check", const("checked"))
        .node("final", const("final"))
        .edge("increment", "check")
        .loop("loop", start_node_id="increment", end_node_id="check", condition="counter < 3")
        .edge("init", "loop")
        .edge("loop", "final")
    )
    result = await flow.run(FlowRuntime())
    assert calls == 3
    assert result.context["_outputs.final"] == "final"


async def test_issue_7_multi_node_loop_with_conditional_exit_and_inner_edges() -> None:
    """Flowcraft issue #7: a multi-node loop A -> D -> E -> F with condition
    'map1 !== 0 && map2 < 3' ignored the edges inside the loop."""
    visits: list[str] = []

    async def a(ctx: NodeContext) -> None:
        visits.append("A")
        await ctx.set("map1", 1)
        await ctx.set("map2", 0)

    async def d(ctx: NodeContext) -> None:
        visits.append("D")

    async def e(ctx: NodeContext) -> None:
        visits.append("E")
        await ctx.set("map2", await ctx.get("map2") + 1)

    async def f(ctx: NodeContext) -> None:
        visits.append("F")

    async def done(ctx: NodeContext) -> str:
        visits.append("done")
        return f"map2={await ctx.get('map2')}"

    flow = (
        Flow("issue-7")
        .node("A", a)
        .node("D", d)
        .node("E", e)
        .node("F", f)
        .node("done", done)
        .edge("D", "E")
        .edge("E", "F")
        .loop("DEF", start_node_id="D", end_node_id="F", condition="map1 !== 0 && map2 < 3")
        .edge("A", "DEF")
        .edge("DEF", "done")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert visits == ["A", "D", "E", "F", "D", "E", "F", "D", "E", "F", "done"]
    assert result.context["_outputs.done"] == "map2=3"


async def test_loop_wrapped_in_a_subflow() -> None:
    """Issue #7's other half: a loop inside a subflow, used from the builder."""

    async def init(ctx: NodeContext) -> None:
        await ctx.set("i", 0)

    async def step(ctx: NodeContext) -> int:
        value = await ctx.get("i") + 1
        await ctx.set("i", value)
        return value

    inner = (
        Flow("inner-loop")
        .node("init", init)
        .node("step", step)
        .node("result", lambda ctx: ctx.input)
        .loop("loop", start_node_id="step", end_node_id="step", condition="i < 4")
        .edge("init", "loop")
        .edge("loop", "result")
    )
    outer = (
        Flow("outer").subflow("run-loop", inner, outputs={"loop_result": "result"}).node("after", const("ok"))
    )
    outer.edge("run-loop", "after")
    result = await outer.run(FlowRuntime())
    assert result.status == "completed", result.errors
    assert result.context["loop_result"] == 4


# --------------------------------------------------------------------------------- subflows
def _child(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None, id: str = "child"
) -> dict[str, Any]:
    return {"id": id, "nodes": nodes, "edges": edges or []}


async def test_subflow_output_and_downstream_input() -> None:
    rt = FlowRuntime(registry={"sub": const("sub-result")}, blueprints=[_child([{"id": "a", "uses": "sub"}])])
    flow = (
        Flow("parent")
        .subflow("call-sub", "child")
        .node("end", lambda ctx: f"end-{ctx.input}")
        .edge("call-sub", "end")
    )
    result = await flow.run(rt)
    assert result.context["_outputs.call-sub"] == "sub-result"
    assert result.context["_outputs.end"] == "end-sub-result"


async def test_subflow_errors() -> None:
    rt = FlowRuntime(blueprints=[_child([{"id": "fail", "uses": "boom"}])], registry={"boom": _raise})
    missing = await Flow("p1").node("s", "subflow", params={}).run(rt)
    assert missing.status == "failed"
    assert "missing 'blueprintId' parameter" in missing.errors[0].message
    unknown = await Flow("p2").subflow("s", "nope").run(rt)
    assert unknown.status == "failed"
    assert "not found in runtime registry" in unknown.errors[0].message
    failing = await Flow("p3").subflow("s", "child").run(rt)
    assert failing.status == "failed"
    assert "Node 'fail' execution failed" in failing.errors[0].message


def _raise(ctx: NodeContext) -> None:
    raise RuntimeError("child failure")


async def test_subflow_inputs_outputs_and_two_terminals() -> None:
    child = _child(
        [{"id": "term1", "uses": "t1"}, {"id": "term2", "uses": "t2", "inputs": "x"}],
        id="two",
    )
    rt = FlowRuntime(
        registry={"t1": const("term1"), "t2": lambda ctx: f"term2:{ctx.input}"}, blueprints=[child]
    )
    result = (
        await Flow("p")
        .node("src", const(5))
        .subflow("test-subflow", "two", inputs={"x": "src"})
        .edge("src", "test-subflow")
        .run(rt)
    )
    assert result.status == "completed"
    assert result.context["_outputs.test-subflow"] == {"term1": "term1", "term2": "term2:5"}
    mapped = await Flow("p2").subflow("s", "two", outputs={"subResult": "term1"}).run(rt)
    assert mapped.context["subResult"] == "term1"


# ------------------------------------------------------------------------------ wait/sleep
async def test_wait_node_pauses_the_run() -> None:
    result = await Flow("w").node("a", const(1)).wait("w").edge("a", "w").run(FlowRuntime())
    assert result.status == "awaiting"
    assert result.context["_awaitingNodeIds"] == ["w"]
    assert result.context["_awaitingDetails"] == {"w": {"reason": "external_event"}}


@pytest.mark.parametrize("duration", [1000, "5s", "1m", "1h", "1d", 0])
async def test_sleep_node_awaits_a_timer(duration: Any) -> None:
    result = await Flow("s").sleep("sleep", duration).run(FlowRuntime())
    assert result.status == "awaiting"
    assert "sleep" in result.context["_awaitingNodeIds"]
    details = result.context["_awaitingDetails"]["sleep"]
    assert details["reason"] == "timer" and details["wakeUpAt"]


@pytest.mark.parametrize("duration", [-100, "invalid", None, True])
async def test_sleep_node_rejects_bad_durations(duration: Any) -> None:
    result = await Flow("s").sleep("sleep", duration).run(FlowRuntime())
    assert result.status == "failed"
    assert "invalid duration" in str(result.errors[0].error)


async def test_nested_loops_with_a_batch_inside_run_every_iteration() -> None:
    """The outer loop's body contains the inner loop and a batch: each outer iteration resets the
    inner controller and forgets the previous iteration's batch workers."""

    async def init(ctx: NodeContext) -> None:
        await ctx.set("i", 0)
        await ctx.set("total", 0)

    async def outer_body(ctx: NodeContext) -> None:
        await ctx.set("i", await ctx.get("i") + 1)
        await ctx.set("j", 0)

    async def inner_body(ctx: NodeContext) -> None:
        await ctx.set("j", await ctx.get("j") + 1)
        await ctx.set("total", await ctx.get("total") + 1)

    async def items(ctx: NodeContext) -> list[int]:
        return [1, 2, await ctx.get("i")]

    flow = (
        Flow("nested")
        .node("init", init)
        .node("outer_body", outer_body)
        .node("inner_body", inner_body)
        .node("after_inner", const("after"))
        .node("items", items)
        .batch("b", lambda ctx: ctx.input * 2, input_key="items", output_key="doubled")
        .node("done", const("done"))
        .loop("inner", start_node_id="inner_body", end_node_id="inner_body", condition="j < 2")
        .edge("outer_body", "inner")
        .edge("inner", "after_inner")
        .edge("after_inner", "items")
        .edge("items", "b")
        .loop("outer", start_node_id="outer_body", end_node_id="b", condition="i < 3")
        .edge("init", "outer")
        .edge("outer", "done")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed", result.errors
    assert (result.context["i"], result.context["total"]) == (3, 6)
    assert result.context["doubled"] == [2, 4, 6]
    assert result.context["_outputs.done"] == "done"
