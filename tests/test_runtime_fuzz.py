"""Random blueprints through the in-process runtime: every run ends with a valid status (or the
infinite-loop guard), every node runs at most once unless a loop re-runs it, a node whose result
took no edge leaves its untaken successors skipped, and nothing raises anything else."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bullflow import FlowRuntime, InfiniteLoopError, NodeContext, NodeResult, load_blueprint

NAMES = [f"n{i}" for i in range(8)]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    names = NAMES[: draw(st.integers(1, len(NAMES)))]
    nodes = []
    behaviour: dict[str, Any] = {}
    for name in names:
        node: dict[str, Any] = {"id": name, "uses": "work"}
        config: dict[str, Any] = {}
        if draw(st.integers(0, 3)) == 0:
            config["joinStrategy"] = "any"
        if draw(st.integers(0, 5)) == 0:
            config["maxRetries"] = draw(st.integers(1, 3))
        if config:
            node["config"] = config
        nodes.append(node)
        behaviour[name] = {
            "action": draw(st.sampled_from([None, None, "a", "b"])),
            "fail": draw(st.integers(0, 6)) == 0,
            "sleep": draw(st.booleans()),
        }
    edges = []
    for _ in range(draw(st.integers(0, 12))):
        edge: dict[str, Any] = {
            "source": draw(st.sampled_from(names)),
            "target": draw(st.sampled_from(names)),
        }
        if draw(st.booleans()):
            edge["action"] = draw(st.sampled_from(["a", "b"]))
        if draw(st.integers(0, 4)) == 0:
            edge["condition"] = draw(
                st.sampled_from(["result.output > 1", "missing.value", "true", "n0 === 0"])
            )
        if draw(st.integers(0, 5)) == 0:
            edge["transform"] = "input"
        edges.append(edge)
    return {"id": "fuzz", "nodes": nodes, "edges": edges}, behaviour


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([1, 2, 10]))
def test_random_blueprints_run_cleanly(
    scenario: tuple[dict[str, Any], dict[str, Any]], concurrency: int
) -> None:
    raw, behaviour = scenario
    runs: dict[str, int] = {}

    async def work(ctx: NodeContext) -> NodeResult:
        runs[ctx.node_id] = runs.get(ctx.node_id, 0) + 1
        spec = behaviour[ctx.node_id]
        if spec["sleep"]:
            await asyncio.sleep(0)
        if spec["fail"]:
            raise RuntimeError(f"{ctx.node_id} fails")
        await ctx.set(f"seen.{ctx.node_id}", True)
        return NodeResult(output=len(runs), action=spec["action"])

    runtime = FlowRuntime(registry={"work": work}, max_waves=200)
    loop = asyncio.new_event_loop()  # not asyncio.run: it would reset the test session's loop
    try:
        result = loop.run_until_complete(runtime.run(load_blueprint(raw), concurrency=concurrency))
    except InfiniteLoopError:
        return
    finally:
        loop.close()
    assert result.status in ("completed", "failed")
    failing = {n for n, spec in behaviour.items() if spec["fail"]}
    ran = set(runs)
    if result.status == "completed":
        assert not (ran & failing)
    else:
        assert result.errors
        for error in result.errors:
            assert error.node_id in ran or error.message.startswith("edges[")
    for node_id in ran - failing:
        assert result.context[f"seen.{node_id}"] is True
        assert f"_outputs.{node_id}" in result.context
    assert not set(result.skipped_node_ids) & ran
    # Without loop controllers a node runs at most once per attempt budget.
    for node_id, count in runs.items():
        attempts = (next(n for n in raw["nodes"] if n["id"] == node_id).get("config") or {}).get(
            "maxRetries", 1
        )
        assert count <= attempts, (node_id, count)
