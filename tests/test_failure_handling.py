"""Failure handling: attempts, retry delays with backoff, per-attempt timeouts, fallbacks, and
Flowcraft defects 7.2-J, L, M, P fixed."""

from __future__ import annotations

import asyncio
import copy
import time
from itertools import pairwise
from typing import Any

from bullflow import (
    FatalNodeError,
    Flow,
    FlowRuntime,
    InMemoryEventLogger,
    NodeContext,
    NodeResult,
    NodeTimeoutError,
)


def const(value: Any) -> Any:
    return lambda ctx: value


async def test_max_retries_counts_total_attempts() -> None:
    attempts: list[int] = []

    def flaky(ctx: NodeContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    result = await Flow("r").node("a", flaky, config={"maxRetries": 3}).run(FlowRuntime())
    assert result.status == "completed"
    assert attempts == [1, 2, 3]


async def test_fatal_errors_are_not_retried_and_skip_the_fallback() -> None:
    attempts = 0

    def fatal(ctx: NodeContext) -> None:
        nonlocal attempts
        attempts += 1
        raise FatalNodeError("Fatal")

    flow = Flow("f").node("a", fatal, config={"maxRetries": 5, "fallback": "fb"}).node("fb", const("fb"))
    result = await flow.run(FlowRuntime())
    assert attempts == 1
    assert result.status == "failed"
    assert result.errors[0].message == "Fatal"
    assert "_outputs.fb" not in result.context


async def test_defect_j_retry_delay_fixed_backoff_is_honoured() -> None:
    """Defect 7.2-J: retryDelay was ignored in-process (3 attempts in ~0 ms)."""
    stamps: list[float] = []

    def flaky(ctx: NodeContext) -> None:
        stamps.append(time.monotonic())
        raise RuntimeError("down")

    await Flow("d").node("a", flaky, config={"maxRetries": 3, "retryDelay": 30}).run(FlowRuntime())
    gaps = [b - a for a, b in pairwise(stamps)]
    assert len(gaps) == 2
    assert all(g >= 0.028 for g in gaps), gaps


async def test_defect_j_retry_delay_exponential_backoff() -> None:
    stamps: list[float] = []

    def flaky(ctx: NodeContext) -> None:
        stamps.append(time.monotonic())
        raise RuntimeError("down")

    await (
        Flow("e")
        .node("a", flaky, config={"maxRetries": 3, "retryDelay": 20, "backoff": "exponential"})
        .run(FlowRuntime())
    )
    gaps = [b - a for a, b in pairwise(stamps)]
    assert gaps[0] >= 0.019 and gaps[1] >= 0.039, gaps


async def test_defect_j_timeout_cancels_the_attempt() -> None:
    """Defect 7.2-J: config.timeout was declared but never implemented."""
    cancelled: list[int] = []

    async def slow(ctx: NodeContext) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt)
            raise
        return "never"

    started = time.monotonic()
    result = await Flow("t").node("a", slow, config={"timeout": 30, "maxRetries": 2}).run(FlowRuntime())
    assert time.monotonic() - started < 2
    assert result.status == "failed"
    assert cancelled == [1, 2]
    error = result.errors[0].error
    assert isinstance(error, NodeTimeoutError)
    assert "timed out after 30 ms (attempt 2)" in str(error)


async def test_timeout_then_success_on_retry() -> None:
    async def sometimes_slow(ctx: NodeContext) -> str:
        if ctx.attempt == 1:
            await asyncio.sleep(5)
        return "fast"

    result = (
        await Flow("t2").node("a", sometimes_slow, config={"timeout": 30, "maxRetries": 2}).run(FlowRuntime())
    )
    assert result.status == "completed"
    assert result.context["_outputs.a"] == "fast"


async def test_timeout_applies_to_plain_functions_run_in_a_thread() -> None:
    def blocking(ctx: NodeContext) -> str:
        time.sleep(0.3)
        return "late"

    result = await Flow("t3").node("a", blocking, config={"timeout": 20}).run(FlowRuntime())
    assert result.status == "failed"
    assert isinstance(result.errors[0].error, NodeTimeoutError)


async def test_failed_attempts_leave_no_context_writes() -> None:
    """A failing node never corrupts run state: writes of a failed attempt are discarded."""

    async def flaky(ctx: NodeContext) -> str:
        await ctx.set(f"attempt{ctx.attempt}", True)
        if ctx.attempt == 1:
            raise RuntimeError("first fails")
        return "ok"

    async def always(ctx: NodeContext) -> None:
        await ctx.set("half-written", True)
        raise RuntimeError("boom")

    ok = await Flow("w").node("a", flaky, config={"maxRetries": 2}).run(FlowRuntime())
    assert "attempt1" not in ok.context and ok.context["attempt2"] is True
    failed = await Flow("w2").node("a", always).run(FlowRuntime())
    assert "half-written" not in failed.context


async def test_defect_l_action_mismatch_ends_the_branch() -> None:
    """Defect 7.2-L: in-process Flowcraft ran all unconditional successors when no edge matched
    the returned action (distributed mode ended the branch). bullflow ends it in both."""
    flow = (
        Flow("mismatch")
        .node("router", lambda ctx: NodeResult(output="r", action="garbage"))
        .node("ban", const("ban"))
        .node("approve", const("approve"))
        .edge("router", "ban", action="action_ban")
        .edge("router", "approve", action="action_approve")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert "_outputs.ban" not in result.context and "_outputs.approve" not in result.context
    assert sorted(result.skipped_node_ids) == ["approve", "ban"]


async def test_defect_m_fallback_does_not_mask_other_failures() -> None:
    """Defect 7.2-M: any config-fallback execution made the run 'completed' even when another
    node failed."""

    def fail(ctx: NodeContext) -> None:
        raise RuntimeError("x")

    flow = (
        Flow("mask")
        .node("handled", fail, config={"fallback": "fb"})
        .node("fb", const("fb"))
        .node("unhandled", fail)
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "failed"
    assert [e.node_id for e in result.errors] == ["unhandled"]
    assert result.context["_outputs.fb"] == "fb"


async def test_fallback_node_is_skipped_when_the_node_succeeds() -> None:
    calls: list[str] = []

    def fb(ctx: NodeContext) -> None:
        calls.append("fb")

    flow = (
        Flow("ok")
        .node("a", const("a"), config={"fallback": "fb"})
        .node("fb", fb)
        .node("after", const("after"))
        .edge("a", "after")
    )
    result = await flow.run(FlowRuntime())
    assert calls == []
    assert result.context["_outputs.after"] == "after"
    assert "fb" in result.skipped_node_ids


async def test_defect_p_blueprints_are_never_mutated() -> None:
    """Defect 7.2-P: applyEdgeTransform rewrote targetNode.inputs in the shared blueprint."""
    flow = (
        Flow("immutable")
        .node("A", const({"v": 1}))
        .node("B", lambda ctx: ctx.input)
        .edge("A", "B", transform="input.v")
    )
    bp = flow.to_blueprint()
    before = copy.deepcopy(bp.to_dict())
    rt = FlowRuntime()
    for _ in range(2):
        result = await rt.run(bp, registry=flow.registry)
        assert result.context["_outputs.B"] == 1
    assert bp.to_dict() == before


async def test_a_broken_condition_is_reported_not_raised() -> None:
    flow = (
        Flow("bad-expr")
        .node("A", const(1))
        .node("B", const("b"))
        .node("C", const("c"))
        .edge("A", "B", condition="result.output ===")
        .edge("A", "C")
    )
    events = InMemoryEventLogger()
    result = await flow.run(FlowRuntime(event_bus=events))
    assert result.status == "failed"
    assert result.errors[0].node_id == "A"
    assert result.errors[0].message.startswith("edges[0].condition:")
    assert result.context["_outputs.C"] == "c"
    assert "_outputs.B" not in result.context
