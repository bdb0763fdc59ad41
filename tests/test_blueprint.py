"""Loading blueprints: sources, sanitising (spec §1.2), and typed errors naming the JSON path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bullflow import Blueprint, BlueprintError, FlowRuntime, load_blueprint
from bullflow.blueprint import NodeConfig

VALID = {
    "id": "bp",
    "nodes": [
        {
            "id": "A",
            "uses": "a",
            "params": {"x": 1},
            "config": {"maxRetries": 3, "retryDelay": 10, "joinStrategy": "any"},
        },
        {"id": "B", "uses": "b", "inputs": {"data": "A"}},
    ],
    "edges": [{"source": "A", "target": "B", "action": "go", "condition": "true", "transform": "input"}],
    "metadata": {"version": "1.2", "cycleEntryPoints": ["A"], "author": "me"},
}


def test_load_from_dict_json_bytes_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bp.json"
    path.write_bytes(orjson.dumps(VALID))
    loaded = [
        load_blueprint(VALID),
        load_blueprint(orjson.dumps(VALID).decode()),
        load_blueprint(orjson.dumps(VALID)),
        load_blueprint(path),
    ]
    for bp in loaded:
        assert bp == loaded[0]
    bp = loaded[0]
    assert bp.id == "bp" and bp.version == "1.2"
    assert bp.nodes[0].config == NodeConfig(max_retries=3, retry_delay=10, join_strategy="any")
    assert bp.nodes[1].inputs == {"data": "A"}
    assert bp.to_dict() == VALID
    assert load_blueprint(bp.to_json()) == bp


def test_file_without_id_takes_its_name(tmp_path: Path) -> None:
    path = tmp_path / "400.json"
    path.write_text('{"nodes": [{"id": "a", "uses": "x"}]}')
    assert load_blueprint(path).id == "400"
    assert load_blueprint(path, id="other").id == "other"


def test_nodes_and_edges_may_be_objects_and_unknown_fields_are_dropped() -> None:
    raw = {
        "id": "objs",
        "nodes": {
            "n1": {
                "id": "A",
                "uses": "a",
                "_sourceLocation": {"file": "x"},
                "position": {"x": 1},
                "__proto__": {},
            }
        },
        "edges": {},
        "extra": True,
    }
    bp = load_blueprint(raw)
    assert bp.to_dict() == {"id": "objs", "nodes": [{"id": "A", "uses": "a"}], "edges": []}


def test_missing_nodes_and_edges_are_empty() -> None:
    bp = load_blueprint({"id": "empty"})
    assert bp.nodes == () and bp.edges == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "a blueprint must be a JSON object, got an array"),
        ({"nodes": []}, "id: required field is missing"),
        ({"id": 5}, "id: expected a string, got 5"),
        ({"id": "x", "nodes": "nope"}, 'nodes: expected an array or an object, got "nope"'),
        ({"id": "x", "nodes": [1]}, "nodes[0]: expected an object, got 1"),
        ({"id": "x", "nodes": [{"uses": "a"}]}, "nodes[0].id: required field is missing"),
        ({"id": "x", "nodes": [{"id": "a"}]}, "nodes[0].uses: required field is missing"),
        ({"id": "x", "nodes": [{"id": "a", "uses": 3}]}, "nodes[0].uses: expected a string, got 3"),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "params": []}]},
            "nodes[0].params: expected an object, got an array",
        ),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": 1}]},
            "nodes[0].inputs: expected a string or an object of strings, got 1",
        ),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {"k": 1}}]},
            "nodes[0].inputs.k: expected a string, got 1",
        ),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": "c"}]},
            'nodes[0].config: expected an object, got "c"',
        ),
        (
            {
                "id": "x",
                "nodes": [
                    {"id": "a", "uses": "u"},
                    {"id": "b", "uses": "u"},
                    {"id": "c", "uses": "u"},
                    {"id": "d", "uses": "u", "config": {"maxRetries": "3"}},
                ],
            },
            'nodes[3].config.maxRetries: expected an integer, got "3"',
        ),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"maxRetries": 2.5}}]},
            "nodes[0].config.maxRetries: expected an integer, got 2.5",
        ),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"timeout": True}}]},
            "nodes[0].config.timeout: expected a number, got true",
        ),
        (
            {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"fallback": 1}}]},
            "nodes[0].config.fallback: expected a string, got 1",
        ),
        ({"id": "x", "edges": [{"source": "a"}]}, "edges[0].target: required field is missing"),
        (
            {"id": "x", "edges": [{"source": "a", "target": "b", "condition": 1}]},
            "edges[0].condition: expected a string, got 1",
        ),
        ({"id": "x", "metadata": 1}, "metadata: expected an object, got 1"),
        (
            {"id": "x", "metadata": {"cycleEntryPoints": "A"}},
            'metadata.cycleEntryPoints: expected an array of strings, got "A"',
        ),
    ],
)
def test_bad_input_names_the_path_and_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(BlueprintError) as info:
        load_blueprint(raw)
    assert str(info.value) == message


def test_integral_floats_are_integers() -> None:
    bp = load_blueprint({"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"maxRetries": 3.0}}]})
    assert bp.nodes[0].config.max_retries == 3


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match=r"malformed JSON at line 3, column 13"):
        load_blueprint('{\n  "id": "x",\n  "nodes": [,]\n}')
    path = tmp_path / "broken.json"
    path.write_text('{"id": ')
    with pytest.raises(BlueprintError, match=r"broken.json: malformed JSON at line 1, column 8"):
        load_blueprint(path)


def test_missing_file_is_a_blueprint_error(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match="cannot read blueprint file"):
        load_blueprint(tmp_path / "nope.json")


def test_blueprint_error_is_a_bullflow_error() -> None:
    from bullflow import BullflowError

    with pytest.raises(BullflowError):
        load_blueprint("{")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"id": "d", "nodes": [{"id": "A", "uses": "x"}, {"id": "A", "uses": "x"}]},
            "nodes[1].id: duplicate node id 'A' (first defined at nodes[0])",
        ),
        (
            {"id": "e", "nodes": [{"id": "A", "uses": "x"}], "edges": [{"source": "A", "target": "Z"}]},
            "edges[0].target: unknown node 'Z'",
        ),
        (
            {"id": "e", "nodes": [{"id": "A", "uses": "x"}], "edges": [{"source": "Q", "target": "A"}]},
            "edges[0].source: unknown node 'Q'",
        ),
        (
            {"id": "f", "nodes": [{"id": "A", "uses": "x", "config": {"fallback": "missing"}}]},
            "nodes[0].config.fallback: fallback node 'missing' not found in blueprint",
        ),
        (
            {"id": "l", "nodes": [{"id": "L", "uses": "loop-controller", "params": {"condition": "true"}}]},
            "nodes[0]: Loop 'L' has no continue edge to start node.",
        ),
    ],
)
async def test_structural_errors_are_raised_before_anything_runs(raw: Any, message: str) -> None:
    ran = False

    def x(ctx: Any) -> None:
        nonlocal ran
        ran = True

    with pytest.raises(BlueprintError) as info:
        await FlowRuntime(registry={"x": x}).run(raw)
    assert str(info.value).startswith(message)
    assert not ran


def test_blueprint_is_immutable() -> None:
    bp = load_blueprint(VALID)
    with pytest.raises(AttributeError):
        bp.id = "other"  # type: ignore[misc]
    assert isinstance(bp, Blueprint)
