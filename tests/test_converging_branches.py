"""Converging exclusive branches: an 'all' join waits only for predecessors that can still arrive.
A branch that was not taken marks its nodes skipped, and the skip propagates (Flowcraft never ran
such joins in-process and never finished such runs distributed: spec §3.4, §8.1, defect 7.2-D)."""

from __future__ import annotations

from typing import Any

from bullflow import Flow, FlowRuntime, NodeContext, NodeResult


def const(value: Any) -> Any:
    return lambda ctx: value


def router(action: str) -> Any:
    return lambda ctx: NodeResult(output=action, action=action)


async def test_all_join_after_an_exclusive_choice_runs_with_the_taken_branch() -> None:
    flow = (
        Flow("xor")
        .node("R", router("x"))
        .node("X", const("from X"))
        .node("Y", const("from Y"))
        .node("J", lambda ctx: f"joined {ctx.input}")
        .edge("R", "X", action="x")
        .edge("R", "Y", action="y")
        .edge("X", "J")
        .edge("Y", "J")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert result.context["_outputs.J"] == "joined from X"
    assert result.skipped_node_ids == ["Y"]


async def test_skips_propagate_through_long_untaken_branches() -> None:
    flow = Flow("deep").node("R", router("short")).node("S", const("short")).node("J", lambda ctx: ctx.input)
    flow.edge("R", "S", action="short").edge("S", "J")
    previous = "R"
    for i in range(50):
        flow.node(f"L{i}", const(i))
        flow.edge(previous, f"L{i}", action="long" if previous == "R" else None)
        previous = f"L{i}"
    flow.edge(previous, "J")
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.J"] == "short"
    assert len(result.skipped_node_ids) == 50


async def test_join_is_skipped_when_no_branch_reaches_it() -> None:
    flow = (
        Flow("none")
        .node("R", router("neither"))
        .node("X", const("x"))
        .node("Y", const("y"))
        .node("J", const("j"))
        .node("after", const("after"))
        .edge("R", "X", action="x")
        .edge("R", "Y", action="y")
        .edge("X", "J")
        .edge("Y", "J")
        .edge("J", "after")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert sorted(result.skipped_node_ids) == ["J", "X", "Y", "after"]


async def test_all_join_still_waits_for_every_branch_that_runs() -> None:
    order: list[str] = []

    def mark(name: str) -> Any:
        def run(ctx: NodeContext) -> str:
            order.append(name)
            return name

        return run

    flow = (
        Flow("wait-all")
        .node("A", mark("A"))
        .node("B", mark("B"))
        .node("C", mark("C"))
        .node("J", mark("J"))
        .edge("A", "B")
        .edge("B", "C")
        .edge("A", "J")
        .edge("C", "J")
    )
    await flow.run(FlowRuntime())
    assert order.index("J") > order.index("C")


async def test_any_join_with_three_predecessors_runs_once() -> None:
    runs = 0

    def join(ctx: NodeContext) -> str:
        nonlocal runs
        runs += 1
        return str(ctx.input)

    flow = Flow("any3").node("J", join, config={"joinStrategy": "any"})
    for name in ("A", "B", "C"):
        flow.node(name, const(name)).edge(name, "J")
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert runs == 1
    assert result.context["_outputs.J"] == "A"
