"""analyze_graph in the Rust extension (bullflow._core) and its pure-Python twin (bullflow._pure):
the golden cases, agreement on random graphs, large inputs, argument errors, and the selector
bullflow._impl."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bullflow._core as core
import bullflow._pure as pure

GOLDEN = json.loads((Path(__file__).parent / "data" / "analysis_golden.json").read_text("utf-8"))
KEYS = ["start_node_ids", "terminal_node_ids", "cycles", "node_count", "edge_count", "is_dag"]
IMPLS = {"rust": core, "python": pure}


@pytest.fixture(params=list(IMPLS))
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return IMPLS[request.param]


# ---- golden cases --------------------------------------------------------------------------------


def test_golden_file_covers_the_spec() -> None:
    names = [case["name"] for case in GOLDEN]
    assert len(names) == len(set(names))
    assert len(GOLDEN) >= 17


@pytest.mark.parametrize("case", GOLDEN, ids=[case["name"] for case in GOLDEN])
def test_golden(impl: ModuleType, case: dict[str, Any]) -> None:
    edges = [tuple(edge) for edge in case["edges"]]
    result = impl.analyze_graph(case["node_ids"], edges)
    assert list(result) == KEYS
    assert result == case["expected"]
    assert type(result["node_count"]) is int
    assert type(result["is_dag"]) is bool


@pytest.mark.parametrize("case", GOLDEN[:12], ids=[case["name"] for case in GOLDEN[:12]])
def test_golden_with_list_edges_and_tuple_nodes(impl: ModuleType, case: dict[str, Any]) -> None:
    assert impl.analyze_graph(tuple(case["node_ids"]), case["edges"]) == case["expected"]


# ---- the module ------------------------------------------------------------------------------------


def test_version() -> None:
    version = core.__version__
    assert isinstance(version, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    try:
        installed = importlib.metadata.version("bullflow")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return
    assert version == installed


def test_pure_package_exports() -> None:
    import bullflow._core as core
    import bullflow._impl as selector

    assert sorted(pure.__all__) == sorted(set(core.__all__) - {"__version__"})
    assert sorted(selector.__all__) == sorted(["IMPL", *pure.__all__])
    assert pure.analyze_graph.__module__ == "bullflow._pure.analysis"


# ---- odd but valid inputs ------------------------------------------------------------------------


def test_any_str_is_an_id(impl: ModuleType) -> None:
    long_id = "x" * 1000
    surrogate = "\ud800"  # not encodable as UTF-8, still a valid str
    nodes = [long_id, "", " ", "\x00", surrogate, "\udfff"]
    edges = [(long_id, ""), ("", long_id), (surrogate, "\udfff"), ("\x00", "\x00")]
    result = impl.analyze_graph(nodes, edges)
    assert result["cycles"] == [[long_id, "", long_id], ["\x00", "\x00"]]
    assert result["start_node_ids"] == [" ", surrogate]
    assert result["terminal_node_ids"] == [" ", "\udfff"]


def test_result_holds_the_callers_str_objects(impl: ModuleType) -> None:
    class Id(str):
        pass

    a, b = Id("A"), Id("B")
    result = impl.analyze_graph([a, b, Id("C")], [("A", "B"), ("B", "A")])
    assert result["start_node_ids"][0] == "C"
    assert all(type(node) is Id for node in result["start_node_ids"])
    cycle = result["cycles"][0]
    assert cycle == ["A", "B", "A"] and cycle[0] is a and cycle[1] is b and cycle[2] is a


class _Seq(Sequence[Any]):
    """A Sequence that is neither a list nor a tuple."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


def test_other_sequences_are_accepted(impl: ModuleType) -> None:
    result = impl.analyze_graph(_Seq(["A", "B"]), _Seq([["A", "B"]]))
    assert result["start_node_ids"] == ["A"]
    assert result["terminal_node_ids"] == ["B"]


def test_result_is_a_fresh_dict(impl: ModuleType) -> None:
    nodes = ["A"]
    first = impl.analyze_graph(nodes, [])
    first["start_node_ids"].append("Z")
    assert impl.analyze_graph(nodes, [])["start_node_ids"] == ["A"]
    assert nodes == ["A"]


# ---- errors ----------------------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (None, [], "node_ids must be a sequence of str, not NoneType"),
    ("AB", [], "node_ids must be a sequence of str, not str"),
    (b"AB", [], "node_ids must be a sequence of str, not bytes"),
    ({"A"}, [], "node_ids must be a sequence of str, not set"),
    (iter(["A"]), [], "node_ids must be a sequence of str, not list_iterator"),
    (["A", 1], [], "node_ids[1] must be a str, not int"),
    (["A", "B", None], [], "node_ids[2] must be a str, not NoneType"),
    (["A", b"B"], [], "node_ids[1] must be a str, not bytes"),
    (["A"], None, "edges must be a sequence of (source, target) pairs, not NoneType"),
    (["A"], "AB", "edges must be a sequence of (source, target) pairs, not str"),
    (["A"], {("A", "B")}, "edges must be a sequence of (source, target) pairs, not set"),
    (["A"], [("A", "B"), "AB"], "edges[1] must be a (source, target) tuple, not str"),
    (["A"], [{"A": "B"}], "edges[0] must be a (source, target) tuple, not dict"),
    (["A"], [("A", "B"), ("A",)], "edges[1] must have 2 items (source, target), not 1"),
    (["A"], [["A", "B", "C"]], "edges[0] must have 2 items (source, target), not 3"),
    (["A"], [()], "edges[0] must have 2 items (source, target), not 0"),
    (["A"], [("A", "B"), (1, "B")], "edges[1][0] must be a str, not int"),
    (["A"], [("A", "B"), ("A", "B"), ["A", None]], "edges[2][1] must be a str, not NoneType"),
    ([1], [(1, 2)], "node_ids[0] must be a str, not int"),  # node_ids are checked first
]


@pytest.mark.parametrize(("node_ids", "edges", "message"), BAD_ARGUMENTS)
def test_bad_arguments(impl: ModuleType, node_ids: Any, edges: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        impl.analyze_graph(node_ids, edges)
    assert str(info.value) == message


def test_wrong_number_of_arguments(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.analyze_graph(["A"])
    with pytest.raises(TypeError):
        impl.analyze_graph(["A"], [], [])
    assert impl.analyze_graph(node_ids=["A"], edges=[])["start_node_ids"] == ["A"]


# ---- large inputs ----------------------------------------------------------------------------------

N = 100_000


def test_long_chain(impl: ModuleType) -> None:
    nodes = [f"n{i}" for i in range(N)]
    edges = list(pairwise(nodes))
    result = impl.analyze_graph(nodes, edges)
    assert result == {
        "start_node_ids": ["n0"],
        "terminal_node_ids": [f"n{N - 1}"],
        "cycles": [],
        "node_count": N,
        "edge_count": N - 1,
        "is_dag": True,
    }


def test_long_cycle(impl: ModuleType) -> None:
    nodes = [f"n{i}" for i in range(N)]
    edges = [*pairwise(nodes), (nodes[-1], nodes[0])]
    result = impl.analyze_graph(nodes, edges)
    assert result["cycles"] == [[*nodes, nodes[0]]]
    assert result["start_node_ids"] == result["terminal_node_ids"] == []


# ---- both implementations agree on random graphs ---------------------------------------------------

SMALL_IDS = st.sampled_from(["A", "B", "C", "D", "E", "F", "", " ", "é"])


@st.composite
def graphs(draw: st.DrawFn, ids: st.SearchStrategy[str]) -> tuple[list[str], list[tuple[str, str]]]:
    nodes = draw(st.lists(ids, max_size=12))
    # Edges mostly between declared ids (so there are cycles), some to or from other ids.
    endpoint = st.sampled_from(nodes) | ids if nodes else ids
    edges = draw(st.lists(st.tuples(endpoint, endpoint), max_size=30))
    # Self-loops and duplicate edges.
    if edges and draw(st.booleans()):
        edges += draw(st.lists(st.sampled_from(edges), max_size=5))
    if nodes and draw(st.booleans()):
        node = draw(st.sampled_from(nodes))
        edges.insert(draw(st.integers(0, len(edges))), (node, node))
    return nodes, edges


def _check_agreement(nodes: list[str], edges: list[tuple[str, str]]) -> None:
    expected = pure.analyze_graph(nodes, edges)
    assert core.analyze_graph(nodes, edges) == expected
    # Invariants of the spec, independently of either implementation.
    targets = {t for _, t in edges}
    sources = {s for s, _ in edges}
    assert expected["start_node_ids"] == [n for n in nodes if n not in targets]
    assert expected["terminal_node_ids"] == [n for n in nodes if n not in sources]
    assert expected["is_dag"] == (not expected["cycles"])
    declared = set(nodes)
    for cycle in expected["cycles"]:
        assert len(cycle) >= 2 and cycle[0] == cycle[-1]
        assert set(cycle) <= declared
        assert all((a, b) in set(edges) for a, b in pairwise(cycle))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(SMALL_IDS))
def test_impls_agree_on_small_alphabet(graph: tuple[list[str], list[tuple[str, str]]]) -> None:
    _check_agreement(*graph)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(st.text(max_size=8)))
def test_impls_agree_on_any_text(graph: tuple[list[str], list[tuple[str, str]]]) -> None:
    _check_agreement(*graph)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 6000), st.integers(0, 2**32 - 1))
def test_impls_agree_on_larger_graphs(nodes_n: int, edges_n: int, seed: int) -> None:
    rnd = random.Random(seed)
    nodes = [f"n{rnd.randrange(max(nodes_n, 1))}" for _ in range(nodes_n)]
    pool = [*nodes, "undeclared-1", "undeclared-2"]
    edges = [(rnd.choice(pool), rnd.choice(pool)) for _ in range(edges_n)]
    assert core.analyze_graph(nodes, edges) == pure.analyze_graph(nodes, edges)


# ---- the selector ----------------------------------------------------------------------------------


def _import_impl(value: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("BULLFLOW_IMPL", None)
    if value is not None:
        env["BULLFLOW_IMPL"] = value
    code = (
        "import bullflow._impl as i; "
        "print(i.IMPL, i.analyze_graph.__module__, sorted(i.__all__), "
        "i.analyze_graph(['A'], [])['start_node_ids'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("value", "impl_name", "module"),
    [
        (None, "rust", "bullflow._core"),
        ("rust", "rust", "bullflow._core"),
        ("python", "python", "bullflow._pure.analysis"),
    ],
)
def test_selector(value: str | None, impl_name: str, module: str) -> None:
    done = _import_impl(value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 2)[:2] == [impl_name, module]
    assert "'IMPL'" in done.stdout and "'analyze_graph'" in done.stdout
    assert done.stdout.rstrip().endswith("['A']")


@pytest.mark.parametrize("value", ["", "Rust", "pure", "c"])
def test_selector_rejects_other_values(value: str) -> None:
    done = _import_impl(value)
    assert done.returncode != 0
    assert "ImportError" in done.stderr
    assert "BULLFLOW_IMPL" in done.stderr and "'rust'" in done.stderr and "'python'" in done.stderr


def test_selector_in_process_matches_environment() -> None:
    impl_module = importlib.import_module("bullflow._impl")
    expected = os.environ.get("BULLFLOW_IMPL", "rust")
    assert impl_module.IMPL == expected
    assert impl_module.analyze_graph is IMPLS[expected].analyze_graph
