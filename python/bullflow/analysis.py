"""Static analysis of a blueprint: start and terminal nodes, cycles, counts (Flowcraft's
``analyzeBlueprint``). The graph work runs in the Rust core (or its pure-Python twin)."""

from __future__ import annotations

from dataclasses import dataclass

from ._impl import analyze_graph
from .blueprint import Blueprint, BlueprintSource, load_blueprint

__all__ = ["BlueprintAnalysis", "analyze_blueprint"]


@dataclass(frozen=True, slots=True)
class BlueprintAnalysis:
    """``cycles`` are paths that start and end at the same node, exactly as Flowcraft reports them
    (``A->B->A`` is ``[["A", "B", "A"]]``)."""

    start_node_ids: list[str]
    terminal_node_ids: list[str]
    cycles: list[list[str]]
    node_count: int
    edge_count: int
    is_dag: bool


def analyze_blueprint(blueprint: BlueprintSource) -> BlueprintAnalysis:
    bp = load_blueprint(blueprint)
    return _analyze(bp)


def _analyze(bp: Blueprint) -> BlueprintAnalysis:
    result = analyze_graph([n.id for n in bp.nodes], [(e.source, e.target) for e in bp.edges])
    return BlueprintAnalysis(
        start_node_ids=list(result["start_node_ids"]),
        terminal_node_ids=list(result["terminal_node_ids"]),
        cycles=[list(c) for c in result["cycles"]],
        node_count=int(result["node_count"]),
        edge_count=int(result["edge_count"]),
        is_dag=bool(result["is_dag"]),
    )
