"""The fluent builder (spec §2.9, §6.5 flow.test.ts) and deterministic uses keys (defect 7.2-Q)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bullflow import BaseNode, BuilderError, Flow, FlowRuntime, NodeContext, uses_key_for
from bullflow.blueprint import EdgeDefinition, NodeConfig

ROOT = Path(__file__).resolve().parents[1]


def fn_a(ctx: NodeContext) -> str:
    return "a"


class SampleNode(BaseNode):
    async def exec(self, prep_result: Any, ctx: NodeContext) -> str:
        return "class"


def test_node_and_edge_definitions() -> None:
    flow = Flow("f")
    assert flow.node("A", "some-key", params={"p": 1}, config={"maxRetries": 2}) is flow
    assert flow.edge("A", "B", action="go", condition="x", transform="input") is flow
    flow.node("B", fn_a)
    bp = flow.to_blueprint()
    assert bp.nodes[0].uses == "some-key"
    assert bp.nodes[0].config == NodeConfig(max_retries=2)
    assert bp.nodes[1].uses == f"{__name__}:fn_a"
    assert bp.edges == (EdgeDefinition("A", "B", "go", "x", "input"),)
    assert flow.registry == {f"{__name__}:fn_a": fn_a}


def test_config_accepts_snake_case_and_rejects_unknown_fields() -> None:
    flow = Flow("c").node("A", fn_a, config={"max_retries": 3, "retry_delay": 5, "join_strategy": "any"})
    assert flow.to_blueprint().nodes[0].config == NodeConfig(
        max_retries=3, retry_delay=5, join_strategy="any"
    )
    with pytest.raises(Exception, match="unknown config field 'retries'"):
        Flow("c").node("A", fn_a, config={"retries": 3})


def test_class_nodes_and_lambdas_get_keys() -> None:
    flow = Flow("k").node("A", SampleNode).node("B", lambda ctx: 1).node("C", lambda ctx: 2)
    keys = [n.uses for n in flow.to_blueprint().nodes]
    assert keys[0] == f"{__name__}:SampleNode"
    assert keys[1].startswith(f"{__name__}:test_class_nodes_and_lambdas_get_keys.<locals>.<lambda>@")
    assert keys[1] != keys[2] or keys[2].endswith("#2")
    assert len(set(keys)) == 3


def test_the_same_function_twice_shares_one_key() -> None:
    flow = Flow("same").node("A", fn_a).node("B", fn_a)
    assert flow.to_blueprint().nodes[0].uses == flow.to_blueprint().nodes[1].uses
    assert len(flow.registry) == 1


def test_no_nodes_and_duplicate_ids_are_errors() -> None:
    with pytest.raises(BuilderError, match=r"Cannot build a blueprint with no nodes."):
        Flow("empty").to_blueprint()
    with pytest.raises(BuilderError, match="already used"):
        Flow("dup").node("A", fn_a).node("A", fn_a)


def test_batch_creates_scatter_and_gather() -> None:
    class BatchWorker(BaseNode):
        async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
            return prep_result

    flow = (
        Flow("b")
        .node("src", fn_a)
        .batch("batch1", BatchWorker, input_key="src", output_key="out")
        .node("after", fn_a)
    )
    flow.edge("src", "batch1").edge("batch1", "after")
    bp = flow.to_blueprint()
    scatter, gather = bp.get_node("batch1_scatter"), bp.get_node("batch1_gather")
    assert scatter is not None and gather is not None
    assert scatter.uses == "batch-scatter" and gather.uses == "batch-gather"
    assert scatter.params["workerUsesKey"].endswith(
        ":test_batch_creates_scatter_and_gather.<locals>.BatchWorker"
    )
    assert gather.config.join_strategy == "all"
    edges = [(e.source, e.target) for e in bp.edges]
    assert ("batch1_scatter", "batch1_gather") in edges
    assert ("src", "batch1_scatter") in edges and ("batch1_gather", "after") in edges


def test_loop_wiring_is_exactly_flowcrafts() -> None:
    flow = (
        Flow("loop")
        .node("start", fn_a)
        .node("inner", fn_a)
        .node("end", fn_a)
        .loop("loop", start_node_id="inner", end_node_id="inner", condition="i < 10")
        .edge("start", "loop")
        .edge("loop", "end")
    )
    bp = flow.to_blueprint()
    assert bp.nodes[3].uses == "loop-controller"
    assert bp.nodes[3].params == {"condition": "i < 10"}
    assert bp.nodes[3].config.join_strategy == "any"
    assert [e.to_dict() for e in bp.edges] == [
        {"source": "loop", "target": "end", "action": "break", "transform": 'context["inner"]'},
        {"source": "start", "target": "loop"},
        {"source": "inner", "target": "loop"},
        {"source": "loop", "target": "inner", "action": "continue", "transform": 'context["inner"]'},
    ]


def test_loop_with_missing_nodes() -> None:
    with pytest.raises(BuilderError, match=r"Loop 'l' references non-existent start node 'x'."):
        Flow("l").node("a", fn_a).loop(
            "l", start_node_id="x", end_node_id="a", condition="true"
        ).to_blueprint()
    with pytest.raises(BuilderError, match=r"Loop 'l' references non-existent end node 'y'."):
        Flow("l").node("a", fn_a).loop(
            "l", start_node_id="a", end_node_id="y", condition="true"
        ).to_blueprint()


def test_cycle_entry_points_and_metadata() -> None:
    bp = Flow("c").node("A", fn_a).set_cycle_entry_point("A").metadata(version="3").to_blueprint()
    assert bp.metadata == {"version": "3", "cycleEntryPoints": ["A"]}
    assert bp.version == "3"


async def test_cycle_entry_point_picks_the_start_of_a_startless_cycle() -> None:
    order: list[str] = []

    def mark(ctx: NodeContext) -> None:
        order.append(ctx.node_id)

    flow = Flow("c").node("A", mark).node("B", mark).edge("A", "B").edge("B", "A").set_cycle_entry_point("B")
    await flow.run(FlowRuntime())
    assert order == ["B", "A"]


def test_uses_keys_are_the_same_in_another_process(tmp_path: Path) -> None:
    """Defect 7.2-Q: Flowcraft's fn_<hash+counter> keys depended on creation order."""
    module = tmp_path / "flows_mod.py"
    module.write_text(
        textwrap.dedent(
            """
            from bullflow import Flow

            def first(ctx):
                return 1

            def second(ctx):
                return 2

            def build(order):
                flow = Flow("f")
                for name in order:
                    flow.node(name, {"first": first, "second": second, "lam": lambda ctx: 3}[name])
                return {n.id: n.uses for n in flow.to_blueprint().nodes}
            """
        )
    )
    script = "import json, sys; import flows_mod; print(json.dumps(flows_mod.build(sys.argv[1].split(','))))"
    outs = []
    for order in ("first,second,lam", "lam,second,first"):
        out = subprocess.run(
            [sys.executable, "-c", script, order],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": f"{tmp_path}:{ROOT / 'python'}", "BULLFLOW_IMPL": "python"},
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        outs.append(out.stdout)
    import json

    a, b = (json.loads(o) for o in outs)
    assert a == b
    assert a["first"] == "flows_mod:first"
    assert uses_key_for(fn_a) == f"{__name__}:fn_a"


async def test_flow_run_registers_subflow_blueprints() -> None:
    child = Flow("child").node("c", lambda ctx: "child-out")
    parent = Flow("parent").subflow("s", child).node("after", lambda ctx: ctx.input).edge("s", "after")
    result = await parent.run(FlowRuntime())
    assert result.context["_outputs.after"] == "child-out"
