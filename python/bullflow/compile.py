"""The runtime's compiled form of a blueprint: the index-based graph from the core
(``_impl.compile_graph``: joins, predecessors, edges, fallbacks, loop bodies, content hash) plus
what only the Python runtime needs per node -- its definition, retry/timeout settings, and its
edges with their compiled condition and transform expressions.

Structural errors that would make a run ambiguous (duplicate node ids, edges to unknown nodes,
unknown fallback nodes, a loop controller without a ``continue`` edge, cycles in strict mode)
raise :class:`BlueprintError` before anything runs. Expressions that do not parse are kept as
errors and reported on the run when the edge is evaluated (``lint_blueprint`` reports them up
front).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ._impl import CompiledGraph, compile_graph
from .analysis import BlueprintAnalysis
from .blueprint import Blueprint, EdgeDefinition, NodeDefinition
from .exceptions import ExpressionError
from .expressions import Expression, compile_expression

__all__ = ["CompiledBlueprint", "CompiledEdge", "CompiledExpression", "CompiledNode", "compile_blueprint"]


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """An edge expression: the compiled form, or the parse error to report when it is used."""

    source: str
    path: str
    expression: Expression | None
    error: ExpressionError | None


@dataclass(frozen=True, slots=True)
class CompiledEdge:
    index: int  # the edge id in the run state (blueprint edge index, or a dynamic edge id)
    source: int  # the predecessor this edge counts for (for inherited edges: the original node)
    target: int
    action: str | None = None
    condition: CompiledExpression | None = None
    transform: CompiledExpression | None = None
    definition: EdgeDefinition | None = None


@dataclass(slots=True)
class CompiledNode:
    index: int
    id: str
    definition: NodeDefinition
    is_loop_controller: bool = False
    out_edges: tuple[CompiledEdge, ...] = ()
    fallback: int | None = None
    loop_start: int | None = None
    max_attempts: int = 1
    retry_delay: float = 0.0  # seconds
    exponential_backoff: bool = False
    timeout: float | None = None  # seconds
    has_conditions: bool = False
    inherits_edges: bool = False  # a fallback node, carrying the edges of the nodes it stands in for


@dataclass(slots=True)
class CompiledBlueprint:
    blueprint: Blueprint
    graph: CompiledGraph
    nodes: list[CompiledNode]
    index: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.blueprint.id

    @property
    def content_hash(self) -> str:
        """sha256 of the blueprint's canonical JSON: the same blueprint gives the same value in
        every process (the version distributed runs pin to)."""
        return self.graph.content_hash

    @property
    def analysis(self) -> BlueprintAnalysis:
        data = self.graph.analysis()
        return BlueprintAnalysis(
            start_node_ids=list(data["start_node_ids"]),
            terminal_node_ids=list(data["terminal_node_ids"]),
            cycles=[list(c) for c in data["cycles"]],
            node_count=int(data["node_count"]),
            edge_count=int(data["edge_count"]),
            is_dag=bool(data["is_dag"]),
        )


@lru_cache(maxsize=4096)
def _expression(source: str, path: str) -> CompiledExpression:
    try:
        return CompiledExpression(source, path, compile_expression(source), None)
    except ExpressionError as err:
        return CompiledExpression(source, path, None, err)


def compile_blueprint(bp: Blueprint, *, strict: bool = False) -> CompiledBlueprint:
    graph = compile_graph(bp.to_dict(), strict)
    edges: list[CompiledEdge] = []
    for e, edge in enumerate(bp.edges):
        source, target, action, _ = graph.edge(e)
        edges.append(
            CompiledEdge(
                index=e,
                source=source,
                target=target,
                action=action,
                condition=None
                if edge.condition is None
                else _expression(edge.condition, f"edges[{e}].condition"),
                transform=None
                if edge.transform is None
                else _expression(edge.transform, f"edges[{e}].transform"),
                definition=edge,
            )
        )
    nodes: list[CompiledNode] = []
    for i, definition in enumerate(bp.nodes):
        cfg = definition.config
        out = tuple(edges[e] for e in graph.out_edges(i))
        nodes.append(
            CompiledNode(
                index=i,
                id=definition.id,
                definition=definition,
                is_loop_controller=graph.is_loop_controller(i),
                out_edges=out,
                fallback=graph.fallback(i),
                loop_start=graph.loop_start(i),
                max_attempts=max(1, cfg.max_retries or 1),
                retry_delay=max(0.0, (cfg.retry_delay or 0) / 1000.0),
                exponential_backoff=cfg.backoff == "exponential",
                timeout=(cfg.timeout / 1000.0) if cfg.timeout and cfg.timeout > 0 else None,
                has_conditions=any(e.condition is not None for e in out),
                inherits_edges=any(e.source != i for e in out),
            )
        )
    return CompiledBlueprint(blueprint=bp, graph=graph, nodes=nodes, index={n.id: n.index for n in nodes})


def dynamic_node(index: int, definition: NodeDefinition, targets: list[tuple[int, int]]) -> CompiledNode:
    """A node added while a run runs (a batch worker or continuation); ``targets`` are its
    (edge id, target node) pairs, always taken."""
    return CompiledNode(
        index=index,
        id=definition.id,
        definition=definition,
        out_edges=tuple(CompiledEdge(index=e, source=index, target=t) for e, t in targets),
    )
