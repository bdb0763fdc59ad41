"""The compiled graph and the scheduling rule (``compile_graph`` / ``RunState``), for both the Rust
core and its pure-Python twin, pinned by ``tests/data/scheduler_golden.json`` (which the Lua
completion script of the distributed runtime must also satisfy)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bullflow._pure as pure
from bullflow.exceptions import BlueprintError, BullflowError, InfiniteLoopError, ResumeError, StrictModeError

GOLDEN = json.loads((Path(__file__).parent / "data" / "scheduler_golden.json").read_text())
STATUS_NAMES = ("pending", "ready", "running", "completed", "skipped", "failed", "awaiting")


def _rust() -> ModuleType:
    import bullflow._core as core

    return core


@pytest.fixture(params=["rust", "python"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return _rust() if request.param == "rust" else pure


def bp(
    nodes: list[Any], edges: list[Any], id: str = "g", metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": id,
        "nodes": [{"id": n, "uses": "x"} if isinstance(n, str) else n for n in nodes],
        "edges": [
            dict(zip(("source", "target"), e.split(">"), strict=True)) if isinstance(e, str) else e
            for e in edges
        ],
        "metadata": metadata or {},
    }


def replay(impl: ModuleType, case: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    graph = impl.compile_graph(case["blueprint"])
    state = impl.RunState(graph, case["max_waves"])
    ids = graph.node_ids

    def name(i: int) -> str:
        return ids[i] if i < len(ids) else f"#{i}"

    def index(node: str) -> int:
        return int(node[1:]) if node.startswith("#") else graph.index_of(node)

    out = []
    for step in case["steps"]:
        op = step["op"]
        rec = {k: v for k, v in step.items() if k not in ("ready", "skipped", "new", "error", "message")}
        try:
            if op == "start":
                rec.update(ready=[name(i) for i in state.start()], skipped=[])
            elif op in ("complete", "resume"):
                ready, skipped = getattr(state, op)(index(step["node"]), step["taken"])
                rec.update(ready=[name(i) for i in ready], skipped=[name(i) for i in skipped])
            elif op == "complete_with_fallback":
                ready, skipped = state.complete_with_fallback(index(step["node"]))
                rec.update(ready=[name(i) for i in ready], skipped=[name(i) for i in skipped])
            elif op == "fail":
                state.fail(index(step["node"]))
            elif op == "suspend":
                state.suspend(index(step["node"]))
            elif op == "running":
                state.mark_running(index(step["node"]))
            elif op == "add_dynamic":
                gather = index(step["gather"]) if step.get("gather") else None
                rec["new"] = state.add_dynamic_nodes(
                    index(step["pred"]), gather, step["workers"], step["continuation"]
                )
            elif op == "arrive":
                rec["ready"] = [name(i) for i in state.arrive(step["nodes"], index(step["pred"]))]
        except BullflowError as err:
            rec.update(error=type(err).__name__, message=str(err))
        out.append(rec)
    return out, {name(i): STATUS_NAMES[s] for i, s in enumerate(state.statuses())}


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_scheduler_cases(impl: ModuleType, case: dict[str, Any]) -> None:
    steps, final = replay(impl, case)
    assert steps == case["steps"]
    assert final == case["final_status"]


@pytest.mark.parametrize(
    ("blueprint", "error", "message"),
    [
        (
            bp(["A", "A"], []),
            BlueprintError,
            "nodes[1].id: duplicate node id 'A' (first defined at nodes[0])",
        ),
        (bp(["A"], ["A>Z"]), BlueprintError, "edges[0].target: unknown node 'Z'"),
        (bp(["A"], ["Q>A"]), BlueprintError, "edges[0].source: unknown node 'Q'"),
        (
            bp([{"id": "A", "uses": "x", "config": {"fallback": "nope"}}], []),
            BlueprintError,
            "nodes[0].config.fallback: fallback node 'nope' not found in blueprint",
        ),
        (
            bp([{"id": "A", "uses": "x", "config": {"fallback": "A"}}], []),
            BlueprintError,
            "nodes[0].config.fallback: a node cannot be its own fallback",
        ),
        (
            bp([{"id": "L", "uses": "loop-controller"}], []),
            BlueprintError,
            "nodes[0]: Loop 'L' has no continue edge to start node.",
        ),
    ],
)
def test_structural_errors(
    impl: ModuleType, blueprint: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        impl.compile_graph(blueprint)
    assert str(info.value).startswith(message)


def test_strict_mode(impl: ModuleType) -> None:
    with pytest.raises(StrictModeError, match="Cycles are not allowed"):
        impl.compile_graph(bp(["A", "B"], ["A>B", "B>A"]), True)
    assert impl.compile_graph(bp(["A", "B"], ["A>B"]), True).node_count == 2


def test_queries_and_analysis(impl: ModuleType) -> None:
    blueprint = bp(
        [
            "S",
            {"id": "F", "uses": "x", "config": {"fallback": "FB", "joinStrategy": "any"}},
            "FB",
            "E",
            "C1",
            "C2",
            "island",
        ],
        [
            "S>F",
            {"source": "F", "target": "E", "action": "ok"},
            {"source": "F", "target": "C1", "condition": "x"},
            "C1>C2",
            "C2>C1",
        ],
    )
    g = impl.compile_graph(blueprint)
    assert (g.blueprint_id, g.node_count, g.edge_count) == ("g", 7, 5)
    assert g.node_ids == ["S", "F", "FB", "E", "C1", "C2", "island"]
    assert g.start == [0, 6]
    assert g.join_any(1) and not g.join_any(0)
    assert g.fallback(1) == 2 and g.fallback(0) is None
    assert g.out_edges(1) == [1, 2] and g.out_edges(2) == [1, 2]
    assert g.edge(1) == (1, 3, "ok", False) and g.edge(2) == (1, 4, None, True)
    assert g.preds(2) == [1] and g.preds(4) == [1] and g.back_preds(4) == [5]
    assert g.successors_by_action(1) == {"ok": [1], "": [2]}
    a = g.analysis()
    assert a["start_node_ids"] == ["S", "FB", "island"]
    assert a["cycles"] == [["C1", "C2", "C1"]] and a["is_dag"] is False
    assert a["strongly_connected_components"] == [["C1", "C2"]]
    order = a["topological_order"]
    assert order.index("S") < order.index("F") < order.index("E")
    assert sorted(order) == sorted(g.node_ids)
    assert a["unreachable_node_ids"] == []
    assert a["predecessor_counts"] == {"S": 0, "F": 1, "FB": 1, "E": 1, "C1": 1, "C2": 1, "island": 0}
    assert a["loops"] == {}


def test_loop_bodies(impl: ModuleType) -> None:
    g = impl.compile_graph(GOLDEN[10]["blueprint"])
    ctrl = g.index_of("ctrl")
    assert g.is_loop_controller(ctrl)
    assert g.loop_start(ctrl) == g.index_of("body")
    assert g.loop_body(ctrl) == [g.index_of("body")]
    assert g.analysis()["loops"] == {"ctrl": ["body"]}


def test_content_hash_is_the_blueprint_version(impl: ModuleType) -> None:
    a = bp([{"id": "A", "uses": "x", "params": {"b": 1, "a": 2.0}}], [])
    b = {
        "metadata": {},
        "edges": [],
        "nodes": [{"params": {"a": 2, "b": 1}, "uses": "x", "id": "A"}],
        "id": "g",
    }
    c = bp([{"id": "A", "uses": "x", "params": {"b": 1, "a": 3}}], [])
    ha, hb, hc = (impl.compile_graph(x).content_hash for x in (a, b, c))
    assert ha == hb != hc
    assert len(ha) == 64 and int(ha, 16) >= 0
    assert _rust().compile_graph(a).content_hash == pure.compile_graph(a).content_hash


def test_lua_encoding(impl: ModuleType) -> None:
    g = impl.compile_graph(GOLDEN[8]["blueprint"])  # fallback case: S, F(fallback FB), FB, E
    args = g.lua_encoding()
    fields = dict(zip(args[::2], args[1::2], strict=True))
    meta = json.loads(fields[b"meta"])
    assert meta == {"id": "g", "hash": g.content_hash, "nodes": 4, "edges": 2, "start": [0]}
    assert json.loads(fields[b"1"]) == [0, 0, 2, -1, [0], [], [[1, 1, 3, None, 0]], []]
    assert json.loads(fields[b"2"]) == [0, 0, -1, -1, [1], [], [[1, 1, 3, None, 0]], []]
    assert args == pure.compile_graph(GOLDEN[8]["blueprint"]).lua_encoding()


def test_snapshot_and_restore(impl: ModuleType) -> None:
    case = next(c for c in GOLDEN if c["name"] == "dynamic workers are predecessors of the gather")
    g = impl.compile_graph(case["blueprint"])
    s = impl.RunState(g, 100)
    s.start()
    s.complete(0, None)
    new = s.add_dynamic_nodes(1, 2, 2, False)
    s.complete(1, None)
    s.arrive(new, 1)
    s.complete(new[0], None)
    snap = json.loads(json.dumps(s.snapshot()))
    other = impl.RunState(g, 100)
    other.restore(snap)
    assert other.statuses() == [3, 3, 0, 0, 3, 0]  # the running worker comes back pending
    assert other.complete(new[1], None) == ([2], [])
    changed = impl.compile_graph({**case["blueprint"], "id": "other"})
    with pytest.raises(ResumeError, match="different version"):
        impl.RunState(changed, 100).restore(snap)


def test_infinite_loop_error_type(impl: ModuleType) -> None:
    case = next(c for c in GOLDEN if c["name"].startswith("loop guard"))
    steps, _ = replay(impl, case)
    assert steps[-1]["error"] == InfiniteLoopError.__name__


def test_hundred_thousand_node_chain(impl: ModuleType) -> None:
    n = 100_000
    g = impl.compile_graph(bp([f"n{i}" for i in range(n)], [f"n{i}>n{i + 1}" for i in range(n - 1)]))
    assert g.start == [0]
    assert g.analysis()["topological_order"][-1] == f"n{n - 1}"
    state = impl.RunState(g, n + 1)
    ready = state.start()
    steps = 0
    while ready:
        ready = state.complete(ready[0], None)[0]
        steps += 1
    assert steps == n


# ------------------------------------------------------------------------- both impls agree
ids = st.sampled_from(["a", "b", "c", "d", "e", "f", "", " ", "节点", "x" * 50])


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    nodes = []
    for name in names:
        node: dict[str, Any] = {"id": name, "uses": draw(st.sampled_from(["x", "x", "x", "loop-controller"]))}
        if draw(st.booleans()):
            node["config"] = {"joinStrategy": draw(st.sampled_from(["all", "any"]))}
        nodes.append(node)
    edges = []
    for _ in range(draw(st.integers(0, 14))):
        edge: dict[str, Any] = {
            "source": draw(st.sampled_from(names)),
            "target": draw(st.sampled_from(names)),
        }
        if draw(st.booleans()):
            edge["action"] = draw(st.sampled_from(["continue", "break", "a"]))
        if draw(st.integers(0, 4)) == 0:
            edge["condition"] = "c"
        edges.append(edge)
    if len(names) > 1 and draw(st.booleans()):
        nodes[0]["config"] = {**nodes[0].get("config", {}), "fallback": names[-1]}
    return {"id": "h", "nodes": nodes, "edges": edges, "metadata": {}}


def _compile(impl: ModuleType, blueprint: dict[str, Any]) -> Any:
    try:
        return impl.compile_graph(blueprint)
    except BlueprintError as err:
        return str(err)


def _describe(g: Any) -> Any:
    if isinstance(g, str):
        return g
    n = g.node_count
    return (
        g.start,
        g.content_hash,
        [
            (g.preds(i), g.back_preds(i), g.out_edges(i), g.fallback(i), g.loop_body(i), g.loop_start(i))
            for i in range(n)
        ],
        g.analysis(),
        g.lua_encoding(),
    )


def _simulate(impl: ModuleType, g: Any, seed: int) -> list[Any]:
    rng = random.Random(seed)
    state = impl.RunState(g, 60)
    trace: list[Any] = []
    try:
        ready = list(state.start())
        trace.append(ready)
        for _ in range(80):
            if not ready:
                break
            i = ready.pop(rng.randrange(len(ready)))
            roll = rng.random()
            if roll < 0.1:
                state.fail(i)
                trace.append(("fail", i))
                continue
            if roll < 0.2 and i < g.node_count and g.fallback(i) is not None:
                got = state.complete_with_fallback(i)
            else:
                out = state.out_edges(i)
                taken = None if rng.random() < 0.5 else [e for e in out if rng.random() < 0.5]
                got = state.complete(i, taken)
            trace.append((i, got))
            ready.extend(got[0])
        trace.append(state.statuses())
    except BullflowError as err:
        trace.append(type(err).__name__)
    return trace


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.integers(0, 2**32))
def test_both_impls_agree(blueprint: dict[str, Any], seed: int) -> None:
    rust_graph, py_graph = _compile(_rust(), blueprint), _compile(pure, blueprint)
    assert _describe(rust_graph) == _describe(py_graph)
    if not isinstance(py_graph, str):
        assert _simulate(_rust(), rust_graph, seed) == _simulate(pure, py_graph, seed)
