"""Flowcraft's runtime integration tests (spec §6.1), run against the in-process runtime."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bullflow import (
    BaseNode,
    CancellationSignal,
    Flow,
    FlowRuntime,
    InMemoryEventLogger,
    NodeContext,
    NodeResult,
    StrictModeError,
    load_blueprint,
)


def bp(
    nodes: list[tuple[str, str]] | list[dict[str, Any]], edges: list[dict[str, Any]], id: str = "t"
) -> Any:
    node_list = [n if isinstance(n, dict) else {"id": n[0], "uses": n[1]} for n in nodes]
    return load_blueprint({"id": id, "nodes": node_list, "edges": edges})


def const(value: Any) -> Any:
    async def node(ctx: NodeContext) -> Any:
        return value

    return node


# --------------------------------------------------------------------------- core execution
async def test_simple_linear_blueprint() -> None:
    flow = Flow("linear").node("A", const("resultA")).node("B", lambda ctx: f"{ctx.input}_B").edge("A", "B")
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "resultA_B"
    assert result.context["B"] == "resultA_B"


async def test_fan_out_fan_in_input_is_last_completed_predecessor() -> None:
    flow = (
        Flow("fan")
        .node("A", const("A"))
        .node("B", const("B"))
        .node("C", const("C"))
        .node("D", lambda ctx: f"input was {ctx.input}")
        .edge("A", "D")
        .edge("B", "D")
        .edge("C", "D")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.D"] == "input was C"


async def test_fail_the_workflow_if_a_branch_fails_in_a_fan_in() -> None:
    def boom(ctx: NodeContext) -> None:
        raise ValueError("B broke")

    flow = (
        Flow("fan").node("A", const("A")).node("B", boom).node("D", const("D")).edge("A", "D").edge("B", "D")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "failed"
    assert [e.node_id for e in result.errors] == ["B"]
    assert result.errors[0].message == "Node 'B' execution failed"
    assert isinstance(result.errors[0].cause, ValueError)
    assert "_outputs.D" not in result.context


async def test_multiple_start_nodes() -> None:
    flow = (
        Flow("starts")
        .node("A", const("A"))
        .node("B", const("B"))
        .node("C", lambda ctx: f"input was {ctx.input}")
        .edge("A", "C")
        .edge("B", "C")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.C"] == "input was B"


async def test_cycle_when_strict_off_runs_each_node_once() -> None:
    calls: list[str] = []

    def node(name: str) -> Any:
        def run(ctx: NodeContext) -> str:
            calls.append(name)
            return name

        return run

    flow = Flow("cycle").node("A", node("A")).node("B", node("B")).edge("A", "B").edge("B", "A")
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert calls == ["A", "B"]


async def test_strict_mode_rejects_cycles() -> None:
    flow = Flow("cycle").node("A", const(1)).node("B", const(2)).edge("A", "B").edge("B", "A")
    with pytest.raises(StrictModeError, match="Cycles are not allowed"):
        await flow.run(FlowRuntime(), strict=True)


async def test_runtime_option_strict_is_honoured() -> None:
    """Flowcraft defect 7.2-O: RuntimeOptions.strict was stored but never read."""
    flow = Flow("cycle").node("A", const(1)).node("B", const(2)).edge("A", "B").edge("B", "A")
    with pytest.raises(StrictModeError):
        await flow.run(FlowRuntime(strict=True))


async def test_break_out_of_a_loop_when_the_condition_is_met() -> None:
    calls = 0

    async def start(ctx: NodeContext) -> None:
        await ctx.set("counter", 0)

    async def body(ctx: NodeContext) -> None:
        nonlocal calls
        calls += 1
        await ctx.set("counter", await ctx.get("counter") + 1)

    flow = (
        Flow("loop")
        .node("start", start)
        .node("loopBody", body)
        .node("end", const("finished"))
        .loop("mainLoop", start_node_id="loopBody", end_node_id="loopBody", condition="counter < 2")
        .edge("start", "mainLoop")
        .edge("mainLoop", "end")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert calls == 2
    assert result.context["counter"] == 2
    assert result.context["_outputs.end"] == "finished"


async def test_loop_involving_multiple_nodes() -> None:
    calls = {"loopBody2": 0, "branchBeforeLoop": 0}

    async def start(ctx: NodeContext) -> None:
        await ctx.set("counter", 0)

    async def body1(ctx: NodeContext) -> None:
        await ctx.set("counter", await ctx.get("counter") + 1)

    def counted(name: str) -> Any:
        def run(ctx: NodeContext) -> str:
            calls[name] += 1
            return name

        return run

    flow = (
        Flow("multi-loop")
        .node("start", start)
        .node("branchBeforeLoop", counted("branchBeforeLoop"))
        .node("loopBody", body1)
        .node("loopBody2", counted("loopBody2"))
        .node("loopBody3", const("3"))
        .node("end", const("end"))
        .edge("start", "branchBeforeLoop")
        .edge("loopBody", "loopBody2")
        .edge("loopBody2", "loopBody3")
        .loop("mainLoop", start_node_id="loopBody", end_node_id="loopBody3", condition="counter < 3")
        .edge("start", "mainLoop")
        .edge("mainLoop", "end")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert calls == {"loopBody2": 3, "branchBeforeLoop": 1}
    assert result.context["_outputs.end"] == "end"


async def test_conditional_edges_from_loop_controller_each_iteration() -> None:
    special = 0

    async def start(ctx: NodeContext) -> None:
        await ctx.set("counter", 0)

    async def body(ctx: NodeContext) -> None:
        await ctx.set("counter", await ctx.get("counter") + 1)

    def special_exit(ctx: NodeContext) -> str:
        nonlocal special
        special += 1
        return "special"

    flow = (
        Flow("early-exit")
        .node("start", start)
        .node("body", body)
        .node("specialExit", special_exit)
        .node("end", const("end"))
        .loop("myLoop", start_node_id="body", end_node_id="body", condition="counter < 10")
        .edge("start", "myLoop")
        .edge("myLoop", "end")
        .edge("myLoop", "specialExit", condition="counter === 5")
    )
    result = await flow.run(FlowRuntime())
    assert special == 1
    assert result.context["counter"] == 5
    assert result.status == "completed"


async def test_fallback_node_when_main_node_fails() -> None:
    def fail(ctx: NodeContext) -> None:
        raise RuntimeError("nope")

    flow = Flow("fb").node("A", fail, config={"fallback": "B"}).node("B", const("fallback success"))
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "fallback success"
    assert result.errors == []


async def test_retry_then_fallback_with_edge_inheritance() -> None:
    calls = {"f": 0, "fb": 0}

    def failing(ctx: NodeContext) -> None:
        calls["f"] += 1
        raise RuntimeError("always")

    def fallback(ctx: NodeContext) -> str:
        calls["fb"] += 1
        return "fallback-success"

    flow = (
        Flow("retry-fallback-flow")
        .node("start", const("s"))
        .node("failingNode", failing, config={"maxRetries": 3, "fallback": "fallbackNode"})
        .node("fallbackNode", fallback)
        .node("endNode", lambda ctx: f"end-with-{ctx.input}")
        .edge("start", "failingNode")
        .edge("failingNode", "endNode")
    )
    events = InMemoryEventLogger()
    result = await flow.run(FlowRuntime(event_bus=events))
    assert calls == {"f": 3, "fb": 1}
    assert len(events.filter("node:retry")) == 2
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.failingNode"] is None
    assert result.context["_outputs.endNode"] == "end-with-fallback-success"


async def test_concurrency_limit_is_respected() -> None:
    active = 0
    peak = 0

    async def slow(ctx: NodeContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1

    for limit, width, expected in ((2, 5, 2), (None, 4, 4), (1, 3, 1)):
        active = peak = 0
        flow = Flow("par")
        for i in range(width):
            flow.node(f"n{i}", slow)
        result = await flow.run(FlowRuntime(), concurrency=limit)
        assert result.status == "completed"
        assert peak == expected, (limit, width, peak)


async def test_conditional_edges_and_context() -> None:
    async def a(ctx: NodeContext) -> None:
        await ctx.set("shared_value", 42)

    async def c(ctx: NodeContext) -> str:
        return f"C received {await ctx.get('shared_value')}"

    flow = (
        Flow("cond")
        .node("A", a)
        .node("B", lambda ctx: NodeResult(action="path-c"))
        .node("C", c)
        .node("D", const("D"))
        .edge("A", "B")
        .edge("B", "C", action="path-c")
        .edge("B", "D", action="path-d")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.C"] == "C received 42"
    assert "_outputs.D" not in result.context


# ---------------------------------------------------------------- state and data flow
async def test_outputs_and_inputs_resolution() -> None:
    flow = (
        Flow("io").node("A", const("data")).node("B", lambda ctx: f"{ctx.input}_B", inputs="A").edge("A", "B")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.A"] == "data"
    assert result.context["_outputs.B"] == "data_B"

    flow2 = (
        Flow("io2")
        .node("A", const({"key": "value"}))
        .node("B", lambda ctx: f"{ctx.input['data']['key']}_B", inputs={"data": "A"})
        .edge("A", "B")
    )
    result2 = await flow2.run(FlowRuntime())
    assert result2.context["_outputs.B"] == "value_B"


async def test_transform_on_edge() -> None:
    flow = (
        Flow("tx").node("A", const(10)).node("B", lambda ctx: ctx.input).edge("A", "B", transform="input * 2")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.B"] == 20


async def test_transform_applies_to_the_node_named_by_inputs() -> None:
    flow = (
        Flow("tx2")
        .node("start", const({"deeply": {"nested": {"value": "extracted"}}}))
        .node("middle", const("middle"))
        .node("end", lambda ctx: ctx.input, inputs="start")
        .edge("start", "middle")
        .edge("middle", "end", transform="input.deeply.nested.value")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.end"] == "extracted"


async def test_transform_with_explicit_inputs() -> None:
    flow = (
        Flow("tx3")
        .node("A", const({"data": 42}))
        .node("B", const("b"))
        .node("C", lambda ctx: ctx.input, inputs="A")
        .edge("A", "B")
        .edge("B", "C", transform="input.data")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.C"] == 42


async def test_undefined_output_is_recorded() -> None:
    flow = Flow("undef").node("A", lambda ctx: None)
    result = await flow.run(FlowRuntime())
    assert "_outputs.A" in result.context and result.context["_outputs.A"] is None


async def test_multiple_predecessors_without_inputs_see_an_input() -> None:
    flow = (
        Flow("multi")
        .node("A", const("a"))
        .node("B", const("b"))
        .node("C", lambda ctx: "had-input" if ctx.input is not None else "no-input")
        .edge("A", "C")
        .edge("B", "C")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.C"] == "had-input"


# ------------------------------------------------------------------------ control flow
async def test_follow_edge_by_action() -> None:
    flow = (
        Flow("act")
        .node("A", lambda ctx: NodeResult(output="a", action="success"))
        .node("B", const("B"))
        .node("C", const("C"))
        .edge("A", "B", action="success")
        .edge("A", "C", action="failure")
    )
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.B"] == "B"
    assert "_outputs.C" not in result.context


async def test_condition_true_and_false_with_default_edge() -> None:
    flow = (
        Flow("cond-ok")
        .node("A", const({"status": "OK"}))
        .node("B", const("B"))
        .edge("A", "B", condition="result.output.status === 'OK'")
    )
    assert (await flow.run(FlowRuntime())).context["_outputs.B"] == "B"
    flow2 = (
        Flow("cond-false")
        .node("A", const("a"))
        .node("B", const("B"))
        .node("C", const("C"))
        .edge("A", "B", condition="1 === 2")
        .edge("A", "C")
    )
    result = await flow2.run(FlowRuntime())
    assert "_outputs.B" not in result.context
    assert result.context["_outputs.C"] == "C"


async def test_unknown_action_takes_default_edge() -> None:
    flow = (
        Flow("default")
        .node("A", lambda ctx: NodeResult(output="A", action="unknown"))
        .node("B", const("B"))
        .node("C", const("C"))
        .edge("A", "B", action="known")
        .edge("A", "C")
    )
    result = await flow.run(FlowRuntime())
    assert "_outputs.B" not in result.context
    assert result.context["_outputs.C"] == "C"


async def test_mutually_exclusive_conditions_with_outputs_addressable_by_node_id() -> None:
    async def route(ctx: NodeContext) -> dict[str, int]:
        await ctx.set("total", 1665)
        return {"total": 1665}

    flow = (
        Flow("conditional-routing")
        .node("route", route)
        .node("autoApprove", const({"status": "approved"}))
        .node("waitManager", const({"status": "pending"}))
        .node("reject", const({"status": "rejected"}))
        .edge("route", "autoApprove", condition="route.total < 500")
        .edge("route", "waitManager", condition="route.total >= 500 && route.total <= 2000")
        .edge("route", "reject", condition="route.total > 2000")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed"
    assert result.context["_outputs.waitManager"] == {"status": "pending"}
    assert "_outputs.autoApprove" not in result.context
    assert "_outputs.reject" not in result.context
    assert sorted(result.skipped_node_ids) == ["autoApprove", "reject"]


# -------------------------------------------------------------- middleware and events
async def test_around_node_middleware_order_is_lifo() -> None:
    order: list[str] = []

    class Around:
        def __init__(self, name: str) -> None:
            self.name = name

        async def around_node(self, ctx: NodeContext, node_id: str, next: Any) -> Any:
            order.append(f"before{self.name}")
            result = await next()
            order.append(f"after{self.name}")
            return result

    def work(ctx: NodeContext) -> str:
        order.append("exec")
        return "ok"

    flow = Flow("mw").node("A", work)
    result = await flow.run(FlowRuntime(middleware=[Around("1"), Around("2")]))
    assert result.status == "completed"
    assert order == ["before1", "before2", "exec", "after2", "after1"]


async def test_around_node_can_short_circuit() -> None:
    class Short:
        def around_node(self, ctx: NodeContext, node_id: str, next: Any) -> Any:
            return "short-circuit"

    ran = False

    def work(ctx: NodeContext) -> str:
        nonlocal ran
        ran = True
        return "real"

    result = await Flow("mw").node("A", work).run(FlowRuntime(middleware=[Short()]))
    assert result.context["_outputs.A"] == "short-circuit"
    assert not ran


async def test_middleware_that_neither_calls_next_nor_returns_fails_the_node() -> None:
    class Broken:
        def around_node(self, ctx: NodeContext, node_id: str, next: Any) -> None:
            return None

    result = await Flow("mw").node("A", const(1)).run(FlowRuntime(middleware=[Broken()]))
    assert result.status == "failed"
    assert "did not call next()" in str(result.errors[0].cause)


async def test_before_and_after_hooks_run_once_and_after_runs_on_failure() -> None:
    seen: list[tuple[str, str, Any]] = []

    class Hooks:
        def before_node(self, ctx: NodeContext, node_id: str) -> None:
            seen.append(("before", node_id, None))

        async def after_node(self, ctx: NodeContext, node_id: str, result: Any, error: Any) -> None:
            seen.append(("after", node_id, type(error).__name__ if error else result))

    def fail(ctx: NodeContext) -> None:
        raise KeyError("x")

    flow = Flow("hooks").node("A", const("a"), config={"maxRetries": 2}).node("B", fail).edge("A", "B")
    result = await flow.run(FlowRuntime(middleware=[Hooks()]))
    assert result.status == "failed"
    assert seen == [
        ("before", "A", None),
        ("after", "A", "a"),
        ("before", "B", None),
        ("after", "B", "KeyError"),
    ]


async def test_events_are_emitted() -> None:
    attempts = 0

    def flaky(ctx: NodeContext) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    def fail(ctx: NodeContext) -> None:
        raise RuntimeError("always")

    events = InMemoryEventLogger()
    flow = Flow("ev").node("A", flaky, config={"maxRetries": 2}).node("B", fail)
    result = await flow.run(FlowRuntime(event_bus=events))
    assert result.status == "failed"
    types = events.types()
    assert types[0] == "workflow:start" and types[-1] == "workflow:finish"
    assert events.find("node:start", lambda e: e.payload["nodeId"] == "A") is not None
    assert events.find("node:finish", lambda e: e.payload["nodeId"] == "A") is not None
    retry = events.filter("node:retry")
    assert len(retry) == 1 and retry[0].payload["attempt"] == 1
    assert retry[0].payload["blueprintId"] == "ev"  # defect 7.2-O: Flowcraft always sent ''
    assert events.find("node:error", lambda e: e.payload["nodeId"] == "B") is not None
    finish = events.filter("workflow:finish")[0]
    assert finish.payload["status"] == "failed"


async def test_context_change_events_name_the_source_node() -> None:
    """Defect 7.2-O: context:change.sourceNode was always 'unknown' and _inputs writes were doubled."""

    async def a(ctx: NodeContext) -> NodeResult:
        await ctx.set("k", 1)
        return NodeResult(output={"v": 2}, action="go")

    events = InMemoryEventLogger()
    flow = (
        Flow("trace")
        .node("A", a)
        .node("B", lambda ctx: ctx.input)
        .node("C", const("c"))
        .edge("A", "B", action="go", transform="input.v")
        .edge("A", "C", condition="result.output.v")
    )
    result = await flow.run(FlowRuntime(event_bus=events))
    assert result.context["_outputs.B"] == 2
    changes = [(e.payload["sourceNode"], e.payload["key"]) for e in events.filter("context:change")]
    assert ("A", "k") in changes
    assert changes.count(("A", "_inputs.B")) == 1
    assert all(source != "unknown" for source, _ in changes)
    assert "_outputs.C" not in result.context  # an action edge matched, so C is not taken


async def test_dependencies_and_signal_are_passed() -> None:
    db = object()
    signal = CancellationSignal()
    seen: dict[str, Any] = {}

    def node(ctx: NodeContext) -> None:
        seen["db"] = ctx.dependencies["db"]
        seen["logger"] = ctx.dependencies["logger"]
        seen["signal"] = ctx.signal

    await Flow("deps").node("A", node).run(FlowRuntime(dependencies={"db": db}), signal=signal)
    assert seen["db"] is db
    assert seen["logger"] is not None
    assert seen["signal"] is signal


# ---------------------------------------------------------------------------- cancellation
async def test_cancellation_inside_a_node_keeps_the_context() -> None:
    """Defect 7.2-N: Flowcraft discarded the context on cancellation."""
    signal = CancellationSignal()

    async def a(ctx: NodeContext) -> str:
        await ctx.set("before", "kept")
        signal.cancel("user asked")
        return "A"

    ran_b = False

    def b(ctx: NodeContext) -> None:
        nonlocal ran_b
        ran_b = True

    events = InMemoryEventLogger()
    flow = Flow("cancel").node("A", a).node("B", b).edge("A", "B")
    result = await flow.run(FlowRuntime(event_bus=events), signal=signal)
    assert result.status == "cancelled"
    assert not ran_b
    assert result.context["before"] == "kept"
    assert result.context["_outputs.A"] == "A"
    assert len(events.filter("workflow:finish")) == 1


async def test_running_nodes_see_the_signal() -> None:
    signal = CancellationSignal()
    observed: list[bool] = []

    async def watcher(ctx: NodeContext) -> None:
        await ctx.signal.wait()
        observed.append(ctx.signal.cancelled)

    async def canceller(ctx: NodeContext) -> None:
        await asyncio.sleep(0.01)
        signal.cancel()

    flow = Flow("cancel2").node("W", watcher).node("X", canceller).node("Y", const("never")).edge("X", "Y")
    result = await flow.run(FlowRuntime(), signal=signal)
    assert result.status == "cancelled"
    assert observed == [True]
    assert "_outputs.Y" not in result.context


# ---------------------------------------------------------------------- boundary conditions
@pytest.mark.parametrize(
    "node_id", ["", "   ", "node@#$%^&*()", "节点🚀", "a" * 1000, "node.subnode", "node/sub/node"]
)
async def test_any_string_is_a_node_id(node_id: str) -> None:
    blueprint = bp([(node_id, "t"), ("after", "t")], [{"source": node_id, "target": "after"}])
    result = await FlowRuntime(registry={"t": const("test")}).run(blueprint)
    assert result.status == "completed"
    assert result.context[f"_outputs.{node_id}"] == "test"
    assert result.context["_outputs.after"] == "test"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "x" * 10_000,
        {},
        {"a": {"b": {"c": [1, 2, {"d": None}]}}},
        list(range(1000)),
        [1, "a", None, {"k": []}],
    ],
)
async def test_outputs_are_kept_as_they_are(value: Any) -> None:
    result = await Flow("out").node("A", lambda ctx: value).run(FlowRuntime())
    assert result.context["_outputs.A"] is value


@pytest.mark.parametrize(
    "value", [None, "", 2**53 - 1, -(2**53 - 1), float("nan"), float("inf"), [], [None, None]]
)
async def test_initial_context_values_are_read_back_identically(value: Any) -> None:
    seen: list[Any] = []

    async def read(ctx: NodeContext) -> None:
        seen.append(await ctx.get("value"))

    await Flow("init").node("A", read).run(FlowRuntime(), {"value": value})
    assert seen == [value]


@pytest.mark.parametrize("concurrency", [1, 2, 5, 10, 0, -1])
async def test_any_concurrency_completes(concurrency: int) -> None:
    flow = Flow("c")
    for i in range(6):
        flow.node(f"n{i}", const(i))
        if i:
            flow.edge("n0", f"n{i}")
    result = await flow.run(FlowRuntime(), concurrency=concurrency)
    assert result.status == "completed"


async def test_long_chain_and_complete_dag() -> None:
    flow = Flow("chain")
    for i in range(100):
        flow.node(f"node{i}", lambda ctx, i=i: i)
        if i:
            flow.edge(f"node{i - 1}", f"node{i}")
    result = await flow.run(FlowRuntime())
    assert result.context["_outputs.node99"] == 99
    dag = Flow("complete")
    for i in range(10):
        dag.node(f"n{i}", const(i))
    for i in range(10):
        for j in range(i + 1, 10):
            dag.edge(f"n{i}", f"n{j}")
    result = await dag.run(FlowRuntime())
    assert result.status == "completed"
    assert result.context["_outputs.n9"] == 9


@pytest.mark.parametrize("thrown", [ValueError("e"), RuntimeError(), KeyError("k"), Exception(42)])
async def test_any_exception_fails_the_run(thrown: Exception) -> None:
    def fail(ctx: NodeContext) -> None:
        raise thrown

    result = await Flow("throw").node("A", fail).run(FlowRuntime())
    assert result.status == "failed"
    assert result.errors and result.errors[0].cause is thrown


async def test_context_values_written_by_a_node_are_read_back_identically() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    values = {"none": None, "nested": {"a": [1, {"b": 2}]}, "circular": circular}

    async def write(ctx: NodeContext) -> None:
        for key, value in values.items():
            await ctx.set(key, value)

    seen: dict[str, Any] = {}

    async def read(ctx: NodeContext) -> None:
        for key in values:
            seen[key] = await ctx.get(key)

    result = await Flow("ctx").node("A", write).node("B", read).edge("A", "B").run(FlowRuntime())
    assert result.status == "completed"
    assert seen == {k: v for k, v in values.items() if k != "circular"} | {"circular": circular}
    assert result.serialized_context.startswith('{"_circularReference":true')


# ---------------------------------------------------------------------------- class nodes
async def test_class_node_lifecycle() -> None:
    order: list[str] = []

    class Greeter(BaseNode):
        async def prep(self, ctx: NodeContext) -> str:
            order.append("prep")
            return str(self.params["name"])

        async def exec(self, prep_result: Any, ctx: NodeContext) -> str:
            order.append("exec")
            return f"hello {prep_result}"

        async def post(self, exec_result: Any, ctx: NodeContext) -> NodeResult:
            order.append("post")
            return NodeResult(output=exec_result.upper(), action="greeted")

    flow = (
        Flow("cls")
        .node("g", Greeter, params={"name": "ada"})
        .node("next", lambda ctx: ctx.input)
        .edge("g", "next", action="greeted")
    )
    result = await flow.run(FlowRuntime())
    assert order == ["prep", "exec", "post"]
    assert result.context["_outputs.next"] == "HELLO ADA"


async def test_class_node_retries_exec_then_uses_its_fallback_and_recovers() -> None:
    calls: list[str] = []

    class Flaky(BaseNode):
        def exec(self, prep_result: Any, ctx: NodeContext) -> str:
            calls.append(f"exec{ctx.attempt}")
            raise RuntimeError("down")

        def fallback(self, error: BaseException, ctx: NodeContext) -> str:
            calls.append("fallback")
            return "cached"

        def recover(self, error: BaseException, ctx: NodeContext) -> None:
            calls.append("recover")

    result = await Flow("cls2").node("f", Flaky, config={"maxRetries": 3}).run(FlowRuntime())
    assert result.status == "completed"
    assert result.context["_outputs.f"] == "cached"
    assert calls == ["exec1", "exec2", "exec3", "fallback", "recover"]


async def test_class_node_default_fallback_rethrows() -> None:
    class Broken(BaseNode):
        async def exec(self, prep_result: Any, ctx: NodeContext) -> None:
            raise ValueError("bad")

    result = await Flow("cls3").node("b", Broken).run(FlowRuntime())
    assert result.status == "failed"
    assert isinstance(result.errors[0].cause, ValueError)


async def test_missing_implementation_fails_the_node() -> None:
    blueprint = bp([("A", "nope")], [])
    result = await FlowRuntime().run(blueprint)
    assert result.status == "failed"
    assert result.errors[0].message == "Implementation for 'nope' not found."


async def test_run_sync_and_run_by_registered_id() -> None:
    runtime = FlowRuntime(
        registry={"one": const(1)}, blueprints=[{"id": "reg", "nodes": [{"id": "A", "uses": "one"}]}]
    )
    # run_sync starts its own event loop, so call it from a thread without one.
    result = await asyncio.to_thread(runtime.run_sync, "reg")
    assert result.status == "completed"
    assert result.context["_outputs.A"] == 1
    with pytest.raises(RuntimeError, match="running event loop"):
        runtime.run_sync("reg")
