"""Compilation of a blueprint into the indexed form the runtimes schedule from.

Per node: its join strategy, its distinct predecessors (split into forward predecessors, which an
'all' join waits for, and back-edge predecessors, which close a cycle and are never waited for),
its outgoing edges (a fallback node also carries the edges of the nodes it stands in for), its
fallback node, and, for loop controllers, the loop body that ``continue`` resets.

Structural errors that would make a run ambiguous (duplicate node ids, edges to unknown nodes,
unknown fallback nodes, a loop controller without a ``continue`` edge) raise
:class:`BlueprintError` before anything runs. Expressions that do not parse are kept as errors and
reported on the run when the edge is evaluated (``lint_blueprint`` reports them up front).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .analysis import BlueprintAnalysis, _analyze
from .blueprint import Blueprint, EdgeDefinition, NodeDefinition
from .exceptions import BlueprintError, ExpressionError
from .expressions import Expression, compile_expression

__all__ = ["CompiledBlueprint", "CompiledEdge", "CompiledNode", "compile_blueprint"]

LOOP_CONTROLLER = "loop-controller"


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """An edge expression: the compiled form, or the parse error to report when it is used."""

    source: str
    path: str
    expression: Expression | None
    error: ExpressionError | None


@dataclass(frozen=True, slots=True)
class CompiledEdge:
    index: int  # position in blueprint.edges; -1 for edges the runtime adds (batch workers)
    source: int  # the predecessor this edge counts for (for inherited edges: the original node)
    target: int
    action: str | None
    condition: CompiledExpression | None
    transform: CompiledExpression | None
    definition: EdgeDefinition | None


@dataclass(slots=True)
class CompiledNode:
    index: int
    id: str
    definition: NodeDefinition
    join_any: bool
    is_loop_controller: bool
    out_edges: tuple[CompiledEdge, ...] = ()
    preds: frozenset[int] = frozenset()
    back_preds: frozenset[int] = frozenset()
    fallback: int | None = None
    loop_body: tuple[int, ...] = ()
    loop_start: int | None = None
    max_attempts: int = 1
    retry_delay: float = 0.0  # seconds
    exponential_backoff: bool = False
    timeout: float | None = None  # seconds
    has_conditions: bool = False
    out_pairs: tuple[tuple[int, int], ...] = ()  # distinct (source, target) over own edges, in order
    inherited_pairs: tuple[tuple[int, int], ...] = ()  # the same for edges inherited as a fallback


@dataclass(slots=True)
class CompiledBlueprint:
    blueprint: Blueprint
    nodes: list[CompiledNode]
    index: dict[str, int]
    start: tuple[int, ...]
    analysis: BlueprintAnalysis
    fallback_targets: frozenset[int] = field(default_factory=frozenset)

    @property
    def id(self) -> str:
        return self.blueprint.id


def _expression(source: str | None, path: str) -> CompiledExpression | None:
    if source is None:
        return None
    try:
        return CompiledExpression(source, path, compile_expression(source), None)
    except ExpressionError as err:
        return CompiledExpression(source, path, None, err)


def compile_blueprint(bp: Blueprint, *, strict: bool = False) -> CompiledBlueprint:
    index: dict[str, int] = {}
    for i, node in enumerate(bp.nodes):
        if node.id in index:
            raise BlueprintError(
                f"duplicate node id {node.id!r} (first defined at nodes[{index[node.id]}])",
                f"nodes[{i}].id",
                blueprint_id=bp.id,
            )
        index[node.id] = i
    n = len(bp.nodes)

    own_edges: list[list[CompiledEdge]] = [[] for _ in range(n)]
    for ei, edge in enumerate(bp.edges):
        for attr in ("source", "target"):
            if getattr(edge, attr) not in index:
                raise BlueprintError(
                    f"unknown node {getattr(edge, attr)!r}", f"edges[{ei}].{attr}", blueprint_id=bp.id
                )
        s, t = index[edge.source], index[edge.target]
        own_edges[s].append(
            CompiledEdge(
                index=ei,
                source=s,
                target=t,
                action=edge.action,
                condition=_expression(edge.condition, f"edges[{ei}].condition"),
                transform=_expression(edge.transform, f"edges[{ei}].transform"),
                definition=edge,
            )
        )

    fallback_of: dict[int, list[int]] = {}
    fallback: list[int | None] = [None] * n
    for i, node in enumerate(bp.nodes):
        fb = node.config.fallback
        if fb is None:
            continue
        if fb not in index:
            raise BlueprintError(
                f"fallback node {fb!r} not found in blueprint",
                f"nodes[{i}].config.fallback",
                blueprint_id=bp.id,
            )
        if index[fb] == i:
            raise BlueprintError(
                "a node cannot be its own fallback", f"nodes[{i}].config.fallback", blueprint_id=bp.id
            )
        fallback[i] = index[fb]
        fallback_of.setdefault(index[fb], []).append(i)

    analysis = _analyze(bp)
    if strict and not analysis.is_dag:
        raise _strict_error(bp)
    fallback_targets = frozenset(fallback_of)
    start = [index[s] for s in analysis.start_node_ids if index[s] not in fallback_targets]
    if not start and analysis.cycles:
        entry_points = set(bp.metadata.get("cycleEntryPoints") or ())
        for cycle in analysis.cycles:
            chosen = next((x for x in cycle if x in entry_points), cycle[0])
            if index[chosen] not in start:
                start.append(index[chosen])

    # Successor lists for the back-edge search: real edges plus node -> fallback.
    succ: list[list[int]] = [[e.target for e in own_edges[i]] for i in range(n)]
    for i, fb_idx in enumerate(fallback):
        if fb_idx is not None:
            succ[i].append(fb_idx)
    back = _back_edges(n, succ, start)

    preds: list[set[int]] = [set() for _ in range(n)]
    back_preds: list[set[int]] = [set() for _ in range(n)]
    for s in range(n):
        for t in succ[s]:
            (back_preds if (s, t) in back else preds)[t].add(s)

    nodes: list[CompiledNode] = []
    for i, node in enumerate(bp.nodes):
        cfg = node.config
        edges = list(own_edges[i])
        inherited: list[CompiledEdge] = []
        for original in fallback_of.get(i, ()):
            inherited.extend(own_edges[original])
        nodes.append(
            CompiledNode(
                index=i,
                id=node.id,
                definition=node,
                join_any=cfg.join_strategy == "any",
                is_loop_controller=node.uses == LOOP_CONTROLLER,
                out_edges=tuple(edges + inherited),
                preds=frozenset(preds[i] - back_preds[i]),
                back_preds=frozenset(back_preds[i]),
                fallback=fallback[i],
                max_attempts=max(1, cfg.max_retries or 1),
                retry_delay=max(0.0, (cfg.retry_delay or 0) / 1000.0),
                exponential_backoff=cfg.backoff == "exponential",
                timeout=(cfg.timeout / 1000.0) if cfg.timeout and cfg.timeout > 0 else None,
                has_conditions=any(e.condition is not None for e in edges + inherited),
                out_pairs=_distinct_pairs(edges),
                inherited_pairs=_distinct_pairs(inherited),
            )
        )

    for compiled_node in nodes:
        if compiled_node.is_loop_controller:
            _compile_loop(bp, compiled_node, nodes)

    return CompiledBlueprint(
        blueprint=bp,
        nodes=nodes,
        index=index,
        start=tuple(start),
        analysis=analysis,
        fallback_targets=fallback_targets,
    )


def _strict_error(bp: Blueprint) -> BlueprintError:
    from .exceptions import StrictModeError

    return StrictModeError(
        f"Workflow '{bp.id}' failed strictness check: Cycles are not allowed.", blueprint_id=bp.id
    )


def _distinct_pairs(edges: list[CompiledEdge]) -> tuple[tuple[int, int], ...]:
    seen: dict[tuple[int, int], None] = {}
    for e in edges:
        seen.setdefault((e.source, e.target), None)
    return tuple(seen)


def _back_edges(n: int, succ: list[list[int]], start: list[int]) -> set[tuple[int, int]]:
    """Edges that close a cycle in a depth-first search from the start nodes (then from any node
    not reached yet, in blueprint order). Iterative: 100,000-node chains are fine."""
    state = [0] * n  # 0 new, 1 on stack, 2 done
    back: set[tuple[int, int]] = set()
    roots = list(start) + list(range(n))
    for root in roots:
        if state[root]:
            continue
        state[root] = 1
        stack: list[tuple[int, int]] = [(root, 0)]
        while stack:
            node, pos = stack[-1]
            nexts = succ[node]
            if pos < len(nexts):
                stack[-1] = (node, pos + 1)
                t = nexts[pos]
                if state[t] == 1:
                    back.add((node, t))
                elif state[t] == 0:
                    state[t] = 1
                    stack.append((t, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def _compile_loop(bp: Blueprint, node: CompiledNode, nodes: list[CompiledNode]) -> None:
    cont = next((e for e in node.out_edges if e.source == node.index and e.action == "continue"), None)
    if cont is None:
        raise BlueprintError(
            f"Loop '{node.id}' has no continue edge to start node. "
            "Add an edge with action 'continue' from the loop controller to the first node of the loop body.",
            f"nodes[{node.index}]",
            blueprint_id=bp.id,
        )
    body: list[int] = []
    seen = {cont.target}
    queue = [cont.target]
    while queue:
        current = queue.pop(0)
        if nodes[current].is_loop_controller:
            continue
        body.append(current)
        for e in nodes[current].out_edges:
            if e.target not in seen:
                seen.add(e.target)
                queue.append(e.target)
    node.loop_body = tuple(body)
    node.loop_start = cont.target


def describe_node(compiled: CompiledBlueprint, index: int) -> dict[str, Any]:
    """A JSON-friendly view of one compiled node (for debugging and the docs)."""
    node = compiled.nodes[index]
    ids = compiled.blueprint.nodes
    return {
        "id": node.id,
        "join": "any" if node.join_any else "all",
        "preds": sorted(ids[p].id for p in node.preds),
        "backPreds": sorted(ids[p].id for p in node.back_preds),
        "fallback": None if node.fallback is None else ids[node.fallback].id,
        "loopBody": [ids[b].id for b in node.loop_body],
    }
