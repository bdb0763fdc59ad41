"""Pause and resume (spec §3.13-3.14): waits, sleeps, nested subflows, action routing on resume."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bullflow import Flow, FlowRuntime, NodeContext, ResumeError, load_blueprint


def const(value: Any) -> Any:
    return lambda ctx: value


async def test_pause_at_a_wait_node_keeps_the_state() -> None:
    flow = (
        Flow("approval")
        .node("start", lambda ctx: ctx.input, inputs="input")
        .wait("wait-for-approval")
        .edge("start", "wait-for-approval")
    )
    result = await flow.run(FlowRuntime(), {"input": 42})
    assert result.status == "awaiting"
    assert result.context["_awaitingNodeIds"] == ["wait-for-approval"]
    assert result.context["input"] == 42
    assert '"_awaitingNodeIds"' in result.serialized_context
    assert '"_outputs.start"' in result.serialized_context


async def test_multiple_sequential_waits() -> None:
    flow = (
        Flow("sequential")
        .node("start", lambda ctx: ctx.input, inputs="input")
        .wait("wait1")
        .wait("wait2")
        .node("end", lambda ctx: {"final": ctx.input + 10}, inputs="_outputs.start")
        .edge("start", "wait1")
        .edge("wait1", "wait2")
        .edge("wait2", "end")
    )
    rt = FlowRuntime()
    bp = flow.to_blueprint()
    first = await rt.run(bp, {"input": 42}, registry=flow.registry)
    assert first.context["_awaitingNodeIds"] == ["wait1"]
    second = await rt.resume(bp, first.serialized_context, registry=flow.registry)
    assert second.status == "awaiting"
    assert second.context["_awaitingNodeIds"] == ["wait2"]
    done = await rt.resume(bp, second.serialized_context, registry=flow.registry)
    assert done.status == "completed"
    assert done.context["_outputs.end"]["final"] == 52


async def test_nested_subflow_with_an_inner_wait() -> None:
    """Defect 7.2-K (second half): resuming a paused subflow only worked for uses 'SubflowNode'."""
    child = (
        Flow("child")
        .node("inner-start", lambda ctx: ctx.input, inputs="value")
        .wait("inner-wait")
        .node("inner-end", lambda ctx: ctx.input + 5, inputs="inner-start")
        .edge("inner-start", "inner-wait")
        .edge("inner-wait", "inner-end")
    )
    parent = (
        Flow("parent")
        .node("main-start", const(50))
        .subflow("subflow", child, inputs={"value": "main-start"})
        .node("main-end", lambda ctx: {"final": ctx.input + 2})
        .edge("main-start", "subflow")
        .edge("subflow", "main-end")
    )
    rt = FlowRuntime(blueprints=parent.blueprints)
    bp = parent.to_blueprint()
    paused = await rt.run(bp, registry=parent.registry)
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["subflow"]
    done = await rt.resume(bp, paused, registry=parent.registry)
    assert done.status == "completed", done.errors
    assert done.context["_outputs.main-end"]["final"] == 57
    assert "_subflowState.subflow" not in done.context


async def test_resume_routes_on_the_given_action() -> None:
    """Defect 7.2-K: Flowcraft ignored resumeData.action; a wait node with only action edges
    finished the run without running either branch."""
    flow = (
        Flow("review")
        .wait("review")
        .node("approve", const("approved"))
        .node("reject", const("rejected"))
        .edge("review", "approve", action="approve")
        .edge("review", "reject", action="reject")
    )
    rt = FlowRuntime()
    bp = flow.to_blueprint()
    paused = await rt.run(bp, registry=flow.registry)
    approved = await rt.resume(bp, paused, action="approve", registry=flow.registry)
    assert approved.status == "completed"
    assert approved.context["_outputs.approve"] == "approved"
    assert "_outputs.reject" not in approved.context
    rejected = await rt.resume(bp, paused, action="reject", output={"why": "no"}, registry=flow.registry)
    assert rejected.context["_outputs.reject"] == "rejected"
    assert rejected.context["_outputs.review"] == {"why": "no"}
    assert "_outputs.approve" not in rejected.context


async def test_resume_errors() -> None:
    flow = Flow("r").node("a", const(1)).wait("w").edge("a", "w")
    rt = FlowRuntime()
    bp = flow.to_blueprint()
    done = await rt.run(Flow("plain").node("a", const(1)).to_blueprint(), registry={})
    with pytest.raises(
        ResumeError, match=r"Cannot resume: The provided context is not in an awaiting state."
    ):
        await rt.resume(bp, done)
    paused = await rt.run(bp, registry=flow.registry)
    with pytest.raises(ResumeError, match="Node 'a' is not in an awaiting state"):
        await rt.resume(bp, paused, node_id="a")
    other = load_blueprint({"id": "r", "nodes": [{"id": "a", "uses": "x"}]})
    with pytest.raises(ResumeError, match="Awaiting node 'w' not found in blueprint"):
        await rt.resume(other, paused)


async def test_sleep_passes_its_input_through_on_resume() -> None:
    flow = (
        Flow("sleepy")
        .node("start", const(42))
        .sleep("pause", 10)
        .node("double", lambda ctx: ctx.input * 2)
        .edge("start", "pause")
        .edge("pause", "double")
    )
    rt = FlowRuntime()
    bp = flow.to_blueprint()
    paused = await rt.run(bp, registry=flow.registry)
    assert paused.status == "awaiting"
    done = await rt.resume(bp, paused, node_id="pause", registry=flow.registry)
    assert done.context["_outputs.double"] == 84


async def test_scheduler_resumes_sleeping_runs() -> None:
    flow = (
        Flow("timer")
        .node("start", const(42))
        .sleep("pause", 1)
        .node("double", lambda ctx: ctx.input * 2)
        .edge("start", "pause")
        .edge("pause", "double")
    )
    rt = FlowRuntime()
    paused = await flow.run(rt)
    assert paused.status == "awaiting"
    assert rt.active_timers() == [paused.run_id]
    rt.start_scheduler(0.02)
    try:
        for _ in range(100):
            if rt.get_resume_result(paused.run_id) is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        await rt.stop_scheduler()
    resumed = rt.get_resume_result(paused.run_id)
    assert resumed is not None and resumed.status == "completed"
    assert resumed.context["_outputs.double"] == 84
    assert rt.active_timers() == []


async def test_resume_after_a_router_does_not_run_untaken_branches() -> None:
    """The traversal is stored with the paused run, so resume never revisits routing decisions."""
    calls: list[str] = []

    def mark(name: str) -> Any:
        def run(ctx: NodeContext) -> str:
            calls.append(name)
            return name

        return run

    flow = (
        Flow("routed")
        .node("router", lambda ctx: ctx.input, inputs="choice")
        .node("left", mark("left"))
        .node("right", mark("right"))
        .wait("hold")
        .node("join", mark("join"))
        .edge("router", "left", condition="router === 'left'")
        .edge("router", "right", condition="router === 'right'")
        .edge("left", "hold")
        .edge("hold", "join")
        .edge("right", "join")
    )
    rt = FlowRuntime()
    bp = flow.to_blueprint()
    paused = await rt.run(bp, {"choice": "left"}, registry=flow.registry)
    assert paused.status == "awaiting"
    done = await rt.resume(bp, paused.serialized_context, registry=flow.registry)
    assert done.status == "completed"
    assert calls == ["left", "join"]


async def test_resume_refuses_a_changed_blueprint() -> None:
    flow = Flow("versioned").node("a", const(1)).wait("w").node("b", const(2)).edge("a", "w").edge("w", "b")
    rt = FlowRuntime()
    paused = await flow.run(rt)
    changed = (
        Flow("versioned").node("a", const(1)).wait("w").node("c", const(3)).edge("a", "w").edge("w", "c")
    )
    with pytest.raises(ResumeError, match="different version of this blueprint"):
        await rt.resume(changed.to_blueprint(), paused, registry=changed.registry)
