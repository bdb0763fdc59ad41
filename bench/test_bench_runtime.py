"""In-process runtime throughput (issue 2): a 200-node chain, a 100-wide fan-out into an 'all'
join, and 500 diamonds (a -> b, c -> d) run concurrently. Nodes are ``async def`` no-ops, as in
Flowcraft's own measurements. Each benchmark checks the result it timed.

Reference (Flowcraft 2.10.1's in-process runtime on this kind of machine, from the issue):
500 diamonds in about 40 ms, a 200-node chain in 3-6 ms.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bullflow import CORE_IMPL, Flow, FlowRuntime, NodeContext

FLOWCRAFT_MS = {"chain-200": 4.5, "fanout-100": None, "diamonds-500": 40.0}


async def noop(ctx: NodeContext) -> int:
    return 1


def chain(n: int) -> Flow:
    flow = Flow(f"chain-{n}")
    for i in range(n):
        flow.node(f"n{i}", noop)
        if i:
            flow.edge(f"n{i - 1}", f"n{i}")
    return flow


def fanout(width: int) -> Flow:
    flow = Flow(f"fanout-{width}").node("source", noop).node("join", noop)
    for i in range(width):
        flow.node(f"w{i}", noop).edge("source", f"w{i}").edge(f"w{i}", "join")
    return flow


def diamond() -> Flow:
    return (
        Flow("diamond")
        .node("a", noop)
        .node("b", noop)
        .node("c", noop)
        .node("d", noop)
        .edge("a", "b")
        .edge("a", "c")
        .edge("b", "d")
        .edge("c", "d")
    )


def _info(benchmark: Any, case: str, nodes: int) -> None:
    benchmark.group = f"runtime: {case}"
    benchmark.extra_info.update({"impl": CORE_IMPL, "nodes": nodes, "flowcraft_ms": FLOWCRAFT_MS.get(case)})


@pytest.mark.parametrize(
    ("case", "flow", "nodes"), [("chain-200", chain(200), 200), ("fanout-100", fanout(100), 102)]
)
def test_single_run(benchmark: Any, run_async: Any, case: str, flow: Flow, nodes: int) -> None:
    runtime = FlowRuntime(registry=flow.registry)
    blueprint = flow.to_blueprint()
    _info(benchmark, case, nodes)
    result = benchmark(run_async, lambda: runtime.run(blueprint))
    assert result.status == "completed"
    assert sum(1 for k in result.context if k.startswith("_outputs.")) == nodes


def test_diamonds_concurrently(benchmark: Any, run_async: Any) -> None:
    flow = diamond()
    runtime = FlowRuntime(registry=flow.registry)
    blueprint = flow.to_blueprint()
    _info(benchmark, "diamonds-500", 2000)

    async def five_hundred() -> list[Any]:
        return await asyncio.gather(*(runtime.run(blueprint) for _ in range(500)))

    results = benchmark(run_async, five_hundred)
    assert len(results) == 500
    assert all(r.status == "completed" and r.context["_outputs.d"] == 1 for r in results)
