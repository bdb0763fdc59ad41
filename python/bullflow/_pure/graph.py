"""Pure-Python twin of the Rust core's graph compiler and scheduler (``rust_core/graph.rs``).

``compile_graph(blueprint)`` turns a sanitised blueprint (the dict ``parse_blueprint`` returns)
into a :class:`CompiledGraph`: nodes and edges by index, per node its join strategy, its distinct
forward predecessors (an 'all' join waits for these) and back-edge predecessors (edges closing a
cycle; never waited for), its outgoing edges (a fallback node also carries the edges of the nodes
it stands in for), its fallback, and for loop controllers the loop body; plus the analysis and a
content hash that serves as the blueprint version.

:class:`RunState` is one run's arrival bookkeeping; ``complete(node, taken_edges)`` returns the
nodes that became ready and the nodes that became skipped. The rule (README "Semantics"):

* each distinct predecessor of a node resolves as *arrived* (it completed and took an edge to the
  node) or *skipped* (it completed without taking one, or was skipped itself);
* 'all' join: ready when every forward predecessor resolved and at least one arrived; skipped
  (and the skip propagates) when all resolved and none arrived;
* 'any' join: ready at the first arrival (later ones are ignored); skipped when every forward
  predecessor resolved without arriving;
* a failed node resolves nothing downstream;
* a back-edge arrival re-runs only a loop controller (or readies a node with no forward
  predecessors left to wait for); a loop controller taking ``continue`` first resets its body and
  defers its other exits to a later iteration;
* a node that fails with a fallback hands its edges to the fallback node; a node that succeeds
  skips its fallback node.

Every node made ready gets a wave number one above the node that readied it; exceeding
``max_waves`` raises ``InfiniteLoopError``. Both implementations are pinned by
``tests/data/scheduler_golden.json``.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from ..exceptions import BlueprintError, InfiniteLoopError, ResumeError, StrictModeError
from .analysis import analyze_graph

__all__ = [
    "AWAITING",
    "COMPLETED",
    "FAILED",
    "PENDING",
    "READY",
    "RUNNING",
    "SKIPPED",
    "STATUS_NAMES",
    "CompiledGraph",
    "RunState",
    "canonical_json",
    "compile_graph",
]

PENDING, READY, RUNNING, COMPLETED, SKIPPED, FAILED, AWAITING = range(7)
STATUS_NAMES = ("pending", "ready", "running", "completed", "skipped", "failed", "awaiting")
LOOP_CONTROLLER = "loop-controller"
_MAX_WAVE = 2**62  # waves grow by one per node made ready; a snapshot's are below this
_NO_PREDS: frozenset[int] = frozenset()


def canonical_json(value: Any) -> str:
    """The canonical text hashed for a blueprint's version: keys sorted, no spaces, non-ASCII
    kept, numbers as JSON.stringify writes them (integral floats without a fraction)."""
    return json.dumps(
        _canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


class CompiledGraph:
    """A compiled blueprint, by index. Node ``i`` is ``blueprint["nodes"][i]``; edge ``e`` is
    ``blueprint["edges"][e]``."""

    __slots__ = (
        "_analysis",
        "_back_preds",
        "_edge_action",
        "_edge_conditional",
        "_edge_source",
        "_edge_target",
        "_fallback",
        "_index",
        "_inherited_pairs",
        "_join_any",
        "_loop_body",
        "_loop_controller",
        "_loop_start",
        "_out_edges",
        "_own_pairs",
        "_preds",
        "_uses",
        "blueprint_id",
        "content_hash",
        "edge_count",
        "node_count",
        "node_ids",
        "start",
    )

    def __init__(self, blueprint: Mapping[str, Any] | str | bytes | bytearray, strict: bool = False) -> None:
        if isinstance(blueprint, (str, bytes, bytearray)):
            blueprint = cast("Mapping[str, Any]", json.loads(blueprint))
        bp_id = str(blueprint.get("id", ""))
        nodes: Sequence[Mapping[str, Any]] = blueprint.get("nodes") or []
        edges: Sequence[Mapping[str, Any]] = blueprint.get("edges") or []
        metadata: Mapping[str, Any] = blueprint.get("metadata") or {}
        self.blueprint_id = bp_id
        n = len(nodes)
        index: dict[str, int] = {}
        node_ids: list[str] = []
        for i, node in enumerate(nodes):
            node_id = node["id"]
            if node_id in index:
                raise BlueprintError(
                    f"duplicate node id {node_id!r} (first defined at nodes[{index[node_id]}])",
                    f"nodes[{i}].id",
                    blueprint_id=bp_id,
                )
            index[node_id] = i
            node_ids.append(node_id)
        self._index = index
        self.node_ids = node_ids
        self.node_count = n
        self.edge_count = len(edges)
        self._uses: list[str] = [node["uses"] for node in nodes]
        self._join_any: list[bool] = [
            (node.get("config") or {}).get("joinStrategy") == "any" for node in nodes
        ]
        self._loop_controller = [u == LOOP_CONTROLLER for u in self._uses]

        source: list[int] = []
        target: list[int] = []
        action: list[str | None] = []
        conditional: list[bool] = []
        own: list[list[int]] = [[] for _ in range(n)]
        for e, edge in enumerate(edges):
            for attr in ("source", "target"):
                if edge[attr] not in index:
                    raise BlueprintError(
                        f"unknown node {edge[attr]!r}", f"edges[{e}].{attr}", blueprint_id=bp_id
                    )
            s, t = index[edge["source"]], index[edge["target"]]
            source.append(s)
            target.append(t)
            action.append(edge.get("action"))
            conditional.append(edge.get("condition") is not None)
            own[s].append(e)
        self._edge_source = source
        self._edge_target = target
        self._edge_action = action
        self._edge_conditional = conditional

        fallback: list[int | None] = [None] * n
        fallback_of: list[list[int]] = [[] for _ in range(n)]
        for i, node in enumerate(nodes):
            fb = (node.get("config") or {}).get("fallback")
            if fb is None:
                continue
            if fb not in index:
                raise BlueprintError(
                    f"fallback node {fb!r} not found in blueprint",
                    f"nodes[{i}].config.fallback",
                    blueprint_id=bp_id,
                )
            if index[fb] == i:
                raise BlueprintError(
                    "a node cannot be its own fallback", f"nodes[{i}].config.fallback", blueprint_id=bp_id
                )
            fallback[i] = index[fb]
            fallback_of[index[fb]].append(i)
        self._fallback = fallback

        analysis = analyze_graph(node_ids, [(edge["source"], edge["target"]) for edge in edges])
        if strict and not analysis["is_dag"]:
            raise StrictModeError(
                f"Workflow '{bp_id}' failed strictness check: Cycles are not allowed.", blueprint_id=bp_id
            )
        start = [index[s] for s in analysis["start_node_ids"] if not fallback_of[index[s]]]
        if not start and analysis["cycles"]:
            entry_points = set(metadata.get("cycleEntryPoints") or ())
            for cycle in analysis["cycles"]:
                chosen = next((x for x in cycle if x in entry_points), cycle[0])
                if index[chosen] not in start:
                    start.append(index[chosen])
        self.start = start

        succ: list[list[int]] = [[target[e] for e in own[i]] for i in range(n)]
        for i, fb_idx in enumerate(fallback):
            if fb_idx is not None:
                succ[i].append(fb_idx)
        back = _back_edges(n, succ, start)
        preds: list[set[int]] = [set() for _ in range(n)]
        back_preds: list[set[int]] = [set() for _ in range(n)]
        for s in range(n):
            for t in succ[s]:
                (back_preds if (s, t) in back else preds)[t].add(s)
        self._preds = [frozenset(preds[i] - back_preds[i]) if preds[i] else _NO_PREDS for i in range(n)]
        self._back_preds = [frozenset(b) if b else _NO_PREDS for b in back_preds]

        out_edges: list[list[int]] = []
        own_pairs: list[tuple[tuple[int, int], ...]] = []
        inherited_pairs: list[tuple[tuple[int, int], ...]] = []
        for i in range(n):
            inherited = [e for original in fallback_of[i] for e in own[original]]
            out_edges.append(own[i] + inherited)
            own_pairs.append(_distinct_pairs(own[i], source, target))
            inherited_pairs.append(_distinct_pairs(inherited, source, target))
        self._out_edges = out_edges
        self._own_pairs = own_pairs
        self._inherited_pairs = inherited_pairs

        self._loop_body: list[tuple[int, ...]] = [() for _ in range(n)]
        self._loop_start: list[int | None] = [None] * n
        for i in range(n):
            if self._loop_controller[i]:
                self._compile_loop(i)
        self._analysis = analysis
        self.content_hash = hashlib.sha256(
            canonical_json(blueprint).encode("utf-8", "surrogatepass")
        ).hexdigest()

    def _compile_loop(self, i: int) -> None:
        cont = next(
            (
                e
                for e in self._out_edges[i]
                if self._edge_source[e] == i and self._edge_action[e] == "continue"
            ),
            None,
        )
        if cont is None:
            raise BlueprintError(
                f"Loop '{self.node_ids[i]}' has no continue edge to start node. "
                "Add an edge with action 'continue' from the loop controller to the first node of the loop body.",
                f"nodes[{i}]",
                blueprint_id=self.blueprint_id,
            )
        start = self._edge_target[cont]
        body: list[int] = []
        seen = {start}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current == i:
                # The body ends where the path returns to this controller; inner loops (and
                # their controllers) are part of it, so nested loops reset as a whole.
                continue
            body.append(current)
            for e in self._out_edges[current]:
                t = self._edge_target[e]
                if t not in seen:
                    seen.add(t)
                    queue.append(t)
        self._loop_body[i] = tuple(body)
        self._loop_start[i] = start

    # ------------------------------------------------------------------------------ queries
    def index_of(self, node_id: str) -> int | None:
        return self._index.get(node_id)

    def uses(self, i: int) -> str:
        return self._uses[_index(i, self.node_count, "node")]

    def join_any(self, i: int) -> bool:
        return self._join_any[_index(i, self.node_count, "node")]

    def is_loop_controller(self, i: int) -> bool:
        return self._loop_controller[_index(i, self.node_count, "node")]

    def preds(self, i: int) -> list[int]:
        return sorted(self._preds[_index(i, self.node_count, "node")])

    def back_preds(self, i: int) -> list[int]:
        return sorted(self._back_preds[_index(i, self.node_count, "node")])

    def out_edges(self, i: int) -> list[int]:
        """Edge indices leaving node ``i``: its own, then those it inherits as a fallback."""
        return list(self._out_edges[_index(i, self.node_count, "node")])

    def edge(self, e: int) -> tuple[int, int, str | None, bool]:
        """(source node, target node, action, has a condition) of edge ``e``."""
        e = _index(e, self.edge_count, "edge")
        return (self._edge_source[e], self._edge_target[e], self._edge_action[e], self._edge_conditional[e])

    def fallback(self, i: int) -> int | None:
        return self._fallback[_index(i, self.node_count, "node")]

    def loop_body(self, i: int) -> list[int]:
        return list(self._loop_body[_index(i, self.node_count, "node")])

    def loop_start(self, i: int) -> int | None:
        return self._loop_start[_index(i, self.node_count, "node")]

    def successors_by_action(self, i: int) -> dict[str, list[int]]:
        """Node ``i``'s own and inherited edges grouped by action ("" = unlabelled/default)."""
        groups: dict[str, list[int]] = {}
        for e in self._out_edges[_index(i, self.node_count, "node")]:
            groups.setdefault(self._edge_action[e] or "", []).append(e)
        return groups

    def analysis(self) -> dict[str, Any]:
        """Flowcraft's analysis plus strongly connected components, a topological order,
        unreachable nodes, distinct predecessor counts and loop bodies (all by node id)."""
        ids = self.node_ids
        n = self.node_count
        succ = [
            [self._edge_target[e] for e in self._out_edges[i] if self._edge_source[e] == i] for i in range(n)
        ]
        sccs = _strongly_connected(n, succ)
        cyclic = [
            c
            for c in sccs
            if len(c) > 1
            or any(
                self._edge_target[e] == c[0] for e in self._out_edges[c[0]] if self._edge_source[e] == c[0]
            )
        ]
        cyclic.sort(key=lambda c: c[0])
        reachable = _reachable(n, succ, self._fallback, self.start)
        return {
            **self._analysis,
            "strongly_connected_components": [[ids[i] for i in c] for c in cyclic],
            "topological_order": [ids[i] for i in _topological_order(n, succ, sccs)],
            "unreachable_node_ids": [ids[i] for i in range(n) if not reachable[i]],
            "predecessor_counts": {ids[i]: len(self._preds[i]) for i in range(n)},
            "loops": {
                ids[i]: [ids[b] for b in self._loop_body[i]] for i in range(n) if self._loop_controller[i]
            },
        }

    def lua_encoding(self) -> list[bytes]:
        """HSET arguments of the compiled graph as the Lua coordination scripts read it: field
        ``meta`` (counts, start nodes, content hash) and one field per node index holding
        ``[joinAny, loopController, fallback|-1, loopStart|-1, [preds], [backPreds],
        [[edge, source, target, action|null, conditional], ...], [loopBody]]``."""
        out: list[bytes] = [
            b"meta",
            _compact(
                {
                    "id": self.blueprint_id,
                    "hash": self.content_hash,
                    "nodes": self.node_count,
                    "edges": self.edge_count,
                    "start": self.start,
                }
            ),
        ]
        for i in range(self.node_count):
            fb = self._fallback[i]
            ls = self._loop_start[i]
            record = [
                1 if self._join_any[i] else 0,
                1 if self._loop_controller[i] else 0,
                -1 if fb is None else fb,
                -1 if ls is None else ls,
                sorted(self._preds[i]),
                sorted(self._back_preds[i]),
                [
                    [
                        e,
                        self._edge_source[e],
                        self._edge_target[e],
                        self._edge_action[e],
                        1 if self._edge_conditional[e] else 0,
                    ]
                    for e in self._out_edges[i]
                ],
                list(self._loop_body[i]),
            ]
            out.append(str(i).encode())
            out.append(_compact(record))
        return out


def _index(value: Any, count: int, what: str) -> int:
    """``operator.index(value)``, which must be in ``range(count)``: a node or edge index given to a
    public method (negative indices are refused, not counted from the end)."""
    i = operator.index(value)
    if not 0 <= i < count:
        raise IndexError(f"{what} index {i} out of range")
    return i


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def compile_graph(
    blueprint: Mapping[str, Any] | str | bytes | bytearray, strict: bool = False
) -> CompiledGraph:
    return CompiledGraph(blueprint, strict)


def _distinct_pairs(
    edges: Iterable[int], source: list[int], target: list[int]
) -> tuple[tuple[int, int], ...]:
    seen: dict[tuple[int, int], None] = {}
    for e in edges:
        seen.setdefault((source[e], target[e]), None)
    return tuple(seen)


def _back_edges(n: int, succ: list[list[int]], start: list[int]) -> set[tuple[int, int]]:
    """Edges closing a cycle in a depth-first search from the start nodes, then from every node
    not reached yet in blueprint order (iterative)."""
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    back: set[tuple[int, int]] = set()
    for root in [*start, *range(n)]:
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, 0)]
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


def _strongly_connected(n: int, succ: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative; each component's nodes in blueprint order; components in
    reverse topological order of the condensation (as Tarjan emits them)."""
    index_of = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index_of[root] != -1:
            continue
        work = [(root, 0)]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, pos = work[-1]
            if pos < len(succ[node]):
                work[-1] = (node, pos + 1)
                t = succ[node][pos]
                if index_of[t] == -1:
                    index_of[t] = low[t] = counter
                    counter += 1
                    stack.append(t)
                    on_stack[t] = True
                    work.append((t, 0))
                elif on_stack[t]:
                    low[node] = min(low[node], index_of[t])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _topological_order(n: int, succ: list[list[int]], sccs: list[list[int]]) -> list[int]:
    """Nodes in a topological order of the condensation: Kahn's algorithm over components, the
    ready component with the smallest first node first; nodes of a component in blueprint order."""
    import heapq

    comp_of = [0] * n
    for c, members in enumerate(sccs):
        for m in members:
            comp_of[m] = c
    indegree = [0] * len(sccs)
    comp_succ: list[set[int]] = [set() for _ in sccs]
    for s in range(n):
        for t in succ[s]:
            a, b = comp_of[s], comp_of[t]
            if a != b and b not in comp_succ[a]:
                comp_succ[a].add(b)
                indegree[b] += 1
    heap = [(sccs[c][0], c) for c in range(len(sccs)) if indegree[c] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        _, c = heapq.heappop(heap)
        order.extend(sccs[c])
        for d in comp_succ[c]:
            indegree[d] -= 1
            if indegree[d] == 0:
                heapq.heappush(heap, (sccs[d][0], d))
    return order


def _reachable(n: int, succ: list[list[int]], fallback: list[int | None], start: list[int]) -> list[bool]:
    seen = [False] * n
    stack = list(start)
    while stack:
        node = stack.pop()
        if seen[node]:
            continue
        seen[node] = True
        stack.extend(succ[node])
        fb = fallback[node]
        if fb is not None:
            stack.append(fb)
    return seen


class RunState:
    """The scheduling state of one run over a :class:`CompiledGraph` (plus nodes added while it
    runs, e.g. batch workers). Node and edge ids are the graph's indices; added nodes and their
    edges get the next indices."""

    __slots__ = (
        "_back_preds",
        "_dynamic",
        "_edge_source",
        "_edge_target",
        "_fallback",
        "_inherited_pairs",
        "_join_any",
        "_loop_controller",
        "_out_edges",
        "_own_pairs",
        "_preds",
        "arrived",
        "extra_preds",
        "fallback_for",
        "graph",
        "max_waves",
        "resolved",
        "status",
        "wave",
    )

    def __init__(self, graph: CompiledGraph, max_waves: int = 10_000) -> None:
        if not isinstance(max_waves, (int, float)):
            raise TypeError(f"max_waves must be an int or a float, not {type(max_waves).__name__}")
        self.graph = graph
        self.max_waves = max_waves
        n = graph.node_count
        self.status = [PENDING] * n
        self.wave = [0] * n
        self.arrived: dict[int, set[int]] = {}
        self.resolved: dict[int, set[int]] = {}
        self.extra_preds: dict[int, set[int]] = {}
        self.fallback_for: dict[int, int] = {}
        # Shared with the graph until a dynamic node is added (copy on write).
        self._preds = graph._preds
        self._back_preds = graph._back_preds
        self._own_pairs = graph._own_pairs
        self._inherited_pairs = graph._inherited_pairs
        self._join_any = graph._join_any
        self._loop_controller = graph._loop_controller
        self._edge_source = graph._edge_source
        self._edge_target = graph._edge_target
        self._out_edges = graph._out_edges
        self._fallback = graph._fallback
        self._dynamic = False

    # --------------------------------------------------------------------------------- events
    def start(self) -> list[int]:
        ready: list[int] = []
        for i in self.graph.start:
            if self.status[i] == PENDING:
                self._make_ready(i, 1, ready)
        return ready

    def mark_running(self, i: int) -> None:
        self.status[_index(i, len(self.status), "node")] = RUNNING

    def complete(self, i: int, taken: Sequence[int] | None) -> tuple[list[int], list[int]]:
        """Node ``i`` completed and took the edges ``taken`` (None: all of its outgoing edges).
        Returns (nodes that became ready, nodes that became skipped)."""
        status = self.status
        if type(i) is not int or not 0 <= i < len(status):
            i = _index(i, len(status), "node")
        if taken is not None:
            edge_count = len(self._edge_source)
            taken = [_index(e, edge_count, "edge") for e in taken]
        status[i] = COMPLETED
        ready: list[int] = []
        skipped: list[int] = []
        w = self.wave[i] + 1
        source = self._edge_source
        target = self._edge_target
        fallback = self._fallback[i]
        if not self._loop_controller[i] and fallback is None and not self._inherited_pairs[i]:
            # Fast path: plain arrivals resolved inline; the rest goes through _propagate.
            taken_targets = None if taken is None else {target[e] for e in taken if source[e] == i}
            rest: list[tuple[int, int, bool]] = []
            preds = self._preds
            for _, t in self._own_pairs[i]:
                if taken_targets is not None and t not in taken_targets:
                    rest.append((t, i, False))
                elif status[t] != PENDING:
                    rest.append((t, i, True))
                elif self._join_any[t] and i not in self._back_preds[t]:
                    self._make_ready(t, w, ready)
                elif len(preds[t]) == 1 and i in preds[t] and t not in self.extra_preds:
                    self._make_ready(t, w, ready)
                else:
                    rest.append((t, i, True))
            if rest:
                self._propagate(rest, w, ready, skipped)
            return ready, skipped
        out = self._out_edges[i]
        taken_pairs = {(source[e], target[e]) for e in (out if taken is None else taken)}
        continuing = False
        loop_start = self.graph._loop_start[i] if i < self.graph.node_count else None
        if self._loop_controller[i] and loop_start is not None:
            continuing = any(t == loop_start for _, t in taken_pairs)
            if continuing:
                self._reset(self.graph._loop_body[i])
        pairs: list[tuple[int, int]] = list(self._own_pairs[i])
        original = self.fallback_for.pop(i, None)
        if original is not None:
            pairs.extend(p for p in self._inherited_pairs[i] if p[0] == original)
        if continuing:
            # The controller runs again: its exits are decided on a later iteration.
            work = [(t, s, True) for s, t in pairs if (s, t) in taken_pairs]
        else:
            work = [(t, s, (s, t) in taken_pairs) for s, t in pairs]
        if fallback is not None:
            work.append((fallback, i, False))
        self._propagate(work, w, ready, skipped)
        return ready, skipped

    def complete_with_fallback(self, i: int) -> tuple[list[int], list[int]]:
        """Node ``i`` failed and its fallback node takes over (and then its edges)."""
        i = _index(i, len(self.status), "node")
        fallback = self._fallback[i]
        if fallback is None:
            raise ValueError(f"node {i} has no fallback")
        self.status[i] = COMPLETED
        self.fallback_for[fallback] = i
        ready: list[int] = []
        skipped: list[int] = []
        self._propagate([(fallback, i, True)], self.wave[i] + 1, ready, skipped)
        return ready, skipped

    def fail(self, i: int) -> None:
        self.status[_index(i, len(self.status), "node")] = FAILED

    def suspend(self, i: int) -> None:
        """Node ``i`` is paused (awaiting a resume)."""
        self.status[_index(i, len(self.status), "node")] = AWAITING

    def reset_pending(self, i: int) -> None:
        """Node ``i`` did not run after all (the run was cancelled)."""
        self.status[_index(i, len(self.status), "node")] = PENDING

    def resume(self, i: int, taken: Sequence[int] | None) -> tuple[list[int], list[int]]:
        i = _index(i, len(self.status), "node")
        if self.status[i] != AWAITING:
            raise ResumeError(f"Cannot resume: Node '{self._node_name(i)}' is not in an awaiting state.")
        return self.complete(i, taken)

    def fallback_origin(self, i: int) -> int | None:
        """The node whose edges fallback node ``i`` is currently carrying, if any."""
        return self.fallback_for.get(_index(i, len(self.status), "node"))

    # ---------------------------------------------------------------------------- dynamic nodes
    def add_dynamic_nodes(self, pred: int, gather: int | None, workers: int, continuation: bool) -> list[int]:
        """Add ``workers`` nodes (predecessor ``pred``; successor ``gather`` and the continuation)
        and, with ``continuation``, one node that waits for all of them (successor ``gather``).
        They become predecessors of ``gather``. Returns the new indices, workers first."""
        pred = _index(pred, len(self.status), "node")
        if gather is not None:
            gather = _index(gather, len(self.status), "node")
        workers = operator.index(workers)
        if workers < 0:
            raise ValueError(f"workers must not be negative, got {workers}")
        self._own_dynamic()
        first = len(self.status)
        worker_ids = list(range(first, first + workers))
        cont = first + workers if continuation else None
        new = [*worker_ids, *([cont] if cont is not None else [])]
        for _ in new:
            self._append_dynamic_node(frozenset({pred}))
        gather_targets = [gather] if gather is not None else []
        for w in worker_ids:
            self._wire(w, gather_targets + ([cont] if cont is not None else []))
        if cont is not None:
            self._preds[cont] = frozenset(worker_ids) if worker_ids else frozenset({pred})
            self._wire(cont, gather_targets)
        if gather is not None:
            self.extra_preds.setdefault(gather, set()).update(new)
        return new

    def arrive(self, nodes: Sequence[int], pred: int) -> list[int]:
        """``pred`` arrives at ``nodes`` (used for freshly added dynamic nodes). Returns the
        nodes that became ready."""
        count = len(self.status)
        targets = [_index(t, count, "node") for t in nodes]
        pred = _index(pred, count, "node")
        ready: list[int] = []
        skipped: list[int] = []
        self._propagate([(t, pred, True) for t in targets], self.wave[pred] + 1, ready, skipped)
        return ready

    def out_edges(self, i: int) -> list[int]:
        return list(self._out_edges[_index(i, len(self.status), "node")])

    def edge_target(self, e: int) -> int:
        return self._edge_target[_index(e, len(self._edge_target), "edge")]

    def _append_dynamic_node(self, preds: frozenset[int]) -> None:
        """One more node: pending, an 'all' join over ``preds``, no edges yet (see ``_wire``)."""
        self.status.append(PENDING)
        self.wave.append(0)
        self._preds.append(preds)
        self._back_preds.append(_NO_PREDS)
        self._join_any.append(False)
        self._loop_controller.append(False)
        self._fallback.append(None)
        self._inherited_pairs.append(())
        self._out_edges.append([])
        self._own_pairs.append(())

    def _wire(self, node: int, targets: list[int]) -> None:
        edges = []
        for t in targets:
            edges.append(len(self._edge_source))
            self._edge_source.append(node)
            self._edge_target.append(t)
        self._out_edges[node] = edges
        self._own_pairs[node] = tuple((node, t) for t in targets)

    def _own_dynamic(self) -> None:
        if self._dynamic:
            return
        self._dynamic = True
        self._preds = list(self._preds)
        self._back_preds = list(self._back_preds)
        self._own_pairs = list(self._own_pairs)
        self._inherited_pairs = list(self._inherited_pairs)
        self._join_any = list(self._join_any)
        self._loop_controller = list(self._loop_controller)
        self._edge_source = list(self._edge_source)
        self._edge_target = list(self._edge_target)
        self._out_edges = [list(x) for x in self._out_edges]
        self._fallback = list(self._fallback)

    # --------------------------------------------------------------------------------- queries
    @property
    def node_count(self) -> int:
        return len(self.status)

    def node_status(self, i: int) -> int:
        return self.status[_index(i, len(self.status), "node")]

    def statuses(self) -> list[int]:
        return list(self.status)

    def nodes_with_status(self, status: int) -> list[int]:
        return [i for i, s in enumerate(self.status) if s == status]

    def _node_name(self, i: int) -> str:
        return self.graph.node_ids[i] if i < self.graph.node_count else f"#{i}"

    # ------------------------------------------------------------------------------- internals
    def _make_ready(self, t: int, w: int, ready: list[int]) -> None:
        if w > self.max_waves:
            raise InfiniteLoopError("Traversal exceeded maximum iterations, possible infinite loop")
        self.status[t] = READY
        self.wave[t] = w
        if self.arrived:
            self.arrived.pop(t, None)
            self.resolved.pop(t, None)
        ready.append(t)

    def _reset(self, body: Iterable[int]) -> None:
        status = self.status
        for b in body:
            if status[b] in (COMPLETED, SKIPPED, PENDING):
                status[b] = PENDING
                self.arrived.pop(b, None)
                self.resolved.pop(b, None)
                # Predecessors added in an earlier iteration (batch workers) are gone.
                self.extra_preds.pop(b, None)

    def _preds_of(self, t: int) -> frozenset[int] | set[int]:
        extra = self.extra_preds.get(t)
        return self._preds[t] | extra if extra else self._preds[t]

    def _waiting_on(self, t: int) -> bool:
        resolved = self.resolved.get(t)
        preds = self._preds_of(t)
        if not resolved:
            return bool(preds)
        return not resolved.issuperset(preds)

    def _propagate(
        self, items: list[tuple[int, int, bool]], w: int, ready: list[int], skipped: list[int]
    ) -> None:
        """Process (target, pred, arrived?) resolutions in order; skips fan out through the queue."""
        status = self.status
        work = deque(items)
        while work:
            t, p, arrived = work.popleft()
            st = status[t]
            loop_controller = self._loop_controller[t]
            if st != PENDING:
                if arrived and st == COMPLETED and loop_controller:
                    self._make_ready(t, w, ready)
                continue
            if p in self._back_preds[t]:
                if arrived:
                    self.arrived.setdefault(t, set()).add(p)
                    if loop_controller or self._join_any[t] or not self._waiting_on(t):
                        self._make_ready(t, w, ready)
                continue
            if arrived:
                if loop_controller or self._join_any[t]:
                    self._make_ready(t, w, ready)
                    continue
                self.arrived.setdefault(t, set()).add(p)
            self.resolved.setdefault(t, set()).add(p)
            if self._waiting_on(t):
                continue
            if self.arrived.get(t):
                self._make_ready(t, w, ready)
            else:
                status[t] = SKIPPED
                skipped.append(t)
                for s, target in self._own_pairs[t]:
                    work.append((target, s, False))
                fb = self._fallback[t]
                if fb is not None:
                    work.append((fb, t, False))

    # ------------------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly state, by index, with the graph's content hash."""
        base = self.graph.node_count
        return {
            "graph": self.graph.content_hash,
            "status": list(self.status),
            "wave": list(self.wave),
            "arrived": {str(t): sorted(ps) for t, ps in self.arrived.items() if ps},
            "resolved": {str(t): sorted(ps) for t, ps in self.resolved.items() if ps},
            "fallbackFor": {str(f): o for f, o in self.fallback_for.items()},
            "dynamic": [
                {"preds": sorted(self._preds[i]), "targets": [t for _, t in self._own_pairs[i]]}
                for i in range(base, len(self.status))
            ],
            "extraPreds": {str(t): sorted(ps) for t, ps in self.extra_preds.items()},
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Continue from a :meth:`snapshot` of a run of the same graph. Every index and status is
        checked first: a snapshot with one out of range raises ``ValueError`` and leaves the state
        as it was."""
        if snapshot.get("graph") != self.graph.content_hash:
            raise ResumeError("Cannot resume: the run was paused with a different version of this blueprint.")
        first = len(self.status)
        entries = list(snapshot.get("dynamic") or [])
        count = first + len(entries)

        def node(value: Any) -> int:
            i = int(value)
            if not 0 <= i < count:
                raise ValueError(f"snapshot: node index {i} out of range")
            return i

        def status_of(value: Any) -> int:
            s = int(value)
            if not PENDING <= s <= AWAITING:
                raise ValueError(f"snapshot: status {s} is not a node status")
            return s

        def wave_of(value: Any) -> int:
            w = int(value)
            if not 0 <= w < _MAX_WAVE:
                raise ValueError(f"snapshot: wave {w} out of range")
            return w

        def sets(key: str) -> dict[int, set[int]]:
            return {node(t): {node(p) for p in ps} for t, ps in (snapshot.get(key) or {}).items()}

        dynamic = [
            (frozenset(node(p) for p in entry.get("preds", ())), [node(t) for t in entry.get("targets", ())])
            for entry in entries
        ]
        status = [status_of(s) for s in snapshot.get("status") or []]
        if len(status) > count:
            raise ValueError(f"snapshot: {len(status)} statuses for {count} nodes")
        wave = [wave_of(w) for w in snapshot.get("wave") or []]
        if len(wave) > count:
            raise ValueError(f"snapshot: {len(wave)} waves for {count} nodes")
        arrived = sets("arrived")
        resolved = sets("resolved")
        fallback_for = {node(f): node(o) for f, o in (snapshot.get("fallbackFor") or {}).items()}
        extra_preds = sets("extraPreds")

        if dynamic:
            self._own_dynamic()
            for k, (preds, targets) in enumerate(dynamic):
                self._append_dynamic_node(preds)
                self._wire(first + k, targets)
        self.status[: len(status)] = status
        self.wave[: len(wave)] = wave
        self.arrived = arrived
        self.resolved = resolved
        self.fallback_for = fallback_for
        self.extra_preds = extra_preds
        for i, s in enumerate(self.status):
            if s in (READY, RUNNING):
                self.status[i] = PENDING
