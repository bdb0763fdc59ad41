"""analyze_blueprint (spec §1.3) and lint_blueprint (spec §1.4 plus bullflow's extra checks)."""

from __future__ import annotations

from typing import Any

from bullflow import analyze_blueprint, lint_blueprint


def graph(nodes: str, edges: list[str]) -> dict[str, Any]:
    return {
        "id": "g",
        "nodes": [{"id": n, "uses": "x"} for n in nodes.split()],
        "edges": [{"source": e.split(">")[0], "target": e.split(">")[1]} for e in edges],
    }


def test_analysis_of_a_cycle() -> None:
    a = analyze_blueprint(graph("A B", ["A>B", "B>A"]))
    assert a.cycles == [["A", "B", "A"]]
    assert a.is_dag is False
    assert analyze_blueprint(graph("A B C", ["A>B", "B>C", "C>A"])).cycles == [["A", "B", "C", "A"]]


def test_analysis_of_a_dag() -> None:
    a = analyze_blueprint(graph("A B C D", ["A>B", "A>C", "B>D", "C>D"]))
    assert a.start_node_ids == ["A"]
    assert a.terminal_node_ids == ["D"]
    assert (a.node_count, a.edge_count, a.is_dag, a.cycles) == (4, 4, True, [])


def test_analysis_of_an_empty_blueprint() -> None:
    a = analyze_blueprint({"id": "e"})
    assert (a.start_node_ids, a.terminal_node_ids, a.cycles, a.node_count, a.edge_count, a.is_dag) == (
        [],
        [],
        [],
        0,
        0,
        True,
    )


def codes(result: Any) -> list[str]:
    return [i.code for i in result.issues]


def test_lint_valid_blueprint() -> None:
    result = lint_blueprint(graph("A B", ["A>B"]), {"x": object()})
    assert result.is_valid and result.issues == []


def test_lint_missing_implementations_and_exempt_builtins() -> None:
    bp = {
        "id": "m",
        "nodes": [
            {"id": "A", "uses": "nope"},
            {"id": "B", "uses": "also-nope"},
            {"id": "W", "uses": "wait"},
            {"id": "S", "uses": "batch-something", "params": {"workerUsesKey": "x"}},
        ],
        "edges": [
            {"source": "A", "target": "B"},
            {"source": "B", "target": "W"},
            {"source": "W", "target": "S"},
        ],
    }
    result = lint_blueprint(bp, ["x"])
    assert codes(result) == ["MISSING_NODE_IMPLEMENTATION", "MISSING_NODE_IMPLEMENTATION"]
    assert result.issues[0].message == "Node implementation key 'nope' is not found in the provided registry."
    assert result.issues[0].node_id == "A"
    assert not result.is_valid


def test_lint_edges_orphans_batch_and_subflow() -> None:
    bp = {
        "id": "e",
        "nodes": [
            {"id": "A", "uses": "x"},
            {"id": "B", "uses": "x"},
            {"id": "C", "uses": "x"},
            {"id": "D", "uses": "x"},
            {"id": "S", "uses": "batch-scatter", "params": {"workerUsesKey": "missing"}},
            {"id": "F", "uses": "subflow", "params": {"blueprintId": "unknown"}},
        ],
        "edges": [
            {"source": "A", "target": "S"},
            {"source": "A", "target": "F"},
            {"source": "Z", "target": "Y"},
            {"source": "C", "target": "D"},
            {"source": "D", "target": "C"},
        ],
    }
    result = lint_blueprint(bp, {"x": 1}, blueprints={"known": {}})
    assert codes(result) == [
        "INVALID_BATCH_WORKER_KEY",
        "INVALID_SUBFLOW_BLUEPRINT_ID",
        "INVALID_EDGE_SOURCE",
        "INVALID_EDGE_TARGET",
        "ORPHAN_NODE",
        "ORPHAN_NODE",
    ]
    source, target = result.issues[2], result.issues[3]
    assert (source.node_id, source.related_id, source.path) == ("Z", "Y", "edges[2].source")
    assert (target.node_id, target.related_id, target.path) == ("Y", "Z", "edges[2].target")
    assert [i.node_id for i in result.issues if i.code == "ORPHAN_NODE"] == ["C", "D"]


def test_single_node_and_no_edge_blueprints_are_valid() -> None:
    assert lint_blueprint(graph("A", []), ["x"]).is_valid
    assert codes(lint_blueprint(graph("A B", []), ["x"])) == []


def test_lint_extra_checks() -> None:
    bp = {
        "id": "extra",
        "nodes": [
            {
                "id": "A",
                "uses": "x",
                "config": {
                    "fallback": "nowhere",
                    "joinStrategy": "some",
                    "maxRetries": 0,
                    "timeout": -5,
                    "retryDelay": -1,
                    "backoff": "linear",
                },
            },
            {"id": "A", "uses": "x"},
            {"id": "L", "uses": "loop-controller", "params": {"condition": "count <"}},
        ],
        "edges": [
            {"source": "A", "target": "L", "condition": "a &&", "transform": "input +"},
        ],
    }
    result = lint_blueprint(bp, ["x"])
    assert codes(result) == [
        "UNKNOWN_FALLBACK_NODE",
        "INVALID_JOIN_STRATEGY",
        "INVALID_BACKOFF",
        "INVALID_RETRIES",
        "INVALID_TIMEOUT",
        "INVALID_RETRY_DELAY",
        "DUPLICATE_NODE_ID",
        "INVALID_LOOP_CONDITION",
        "MISSING_LOOP_CONTINUE_EDGE",
        "INVALID_CONDITION",
        "INVALID_TRANSFORM",
    ]
    by_code = {i.code: i for i in result.issues}
    assert by_code["INVALID_CONDITION"].path == "edges[0].condition"
    assert by_code["INVALID_RETRIES"].path == "nodes[0].config.maxRetries"
    assert by_code["DUPLICATE_NODE_ID"].path == "nodes[1].id"
