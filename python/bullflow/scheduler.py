"""The scheduling rule: which nodes become ready, and which are skipped, when a node finishes.

A node's distinct predecessors each *resolve* in one of two ways: they **arrive** (the predecessor
completed and took an edge to the node) or they are **skipped** (the predecessor completed without
taking any edge to the node, or was itself skipped). Then:

* an ``'all'`` join is ready when every forward predecessor has resolved and at least one arrived;
  when all resolved and none arrived, the node is skipped and the skip propagates downstream. So
  converging exclusive branches reach their join (Flowcraft never runs it);
* an ``'any'`` join is ready at the first arrival; later arrivals are ignored. It is skipped when
  every forward predecessor resolved without arriving;
* a failed node resolves nothing: what depends on it never runs, and the run ends ``failed``;
* back-edge predecessors (edges that close a cycle) are never waited for. A completed node is not
  run again when a back edge reaches it -- except a loop controller, which runs on every arrival.
  A loop controller that takes its ``continue`` edge first resets its loop body, so the body runs
  again;
* a node with a config fallback that fails hands over to its fallback node, which then takes the
  failed node's outgoing edges; when the node succeeds, its fallback node is skipped.

Every node made ready carries a wave number (one more than the node that triggered it); a run that
exceeds ``max_waves`` raises :class:`InfiniteLoopError`, Flowcraft's infinite-loop guard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .compile import CompiledBlueprint, CompiledEdge, CompiledNode
from .exceptions import InfiniteLoopError, ResumeError

__all__ = ["NodeStatus", "RunScheduler"]


class NodeStatus:
    PENDING = 0
    READY = 1
    RUNNING = 2
    COMPLETED = 3
    SKIPPED = 4
    FAILED = 5
    AWAITING = 6

    NAMES = ("pending", "ready", "running", "completed", "skipped", "failed", "awaiting")


PENDING, READY, RUNNING, COMPLETED, SKIPPED, FAILED, AWAITING = range(7)


class RunScheduler:
    """Arrival bookkeeping for one run over a compiled blueprint (plus the run's dynamic nodes)."""

    __slots__ = (
        "arrived",
        "compiled",
        "extra_preds",
        "fallback_for",
        "index",
        "max_waves",
        "nodes",
        "resolved",
        "status",
        "wave",
    )

    def __init__(self, compiled: CompiledBlueprint, *, max_waves: int = 10_000) -> None:
        self.compiled = compiled
        self.nodes: list[CompiledNode] = compiled.nodes
        self.index: dict[str, int] = compiled.index
        n = len(self.nodes)
        self.status = [PENDING] * n
        self.arrived: dict[int, set[int]] = {}
        self.resolved: dict[int, set[int]] = {}
        self.extra_preds: dict[int, set[int]] = {}
        self.wave = [0] * n
        self.max_waves = max_waves
        self.fallback_for: dict[int, int] = {}

    # ----------------------------------------------------------------------------------- events
    def start(self) -> list[int]:
        ready: list[int] = []
        for i in self.compiled.start:
            if self.status[i] == PENDING:
                self._make_ready(i, 1, ready)
        return ready

    def mark_running(self, i: int) -> None:
        self.status[i] = RUNNING

    def complete(self, i: int, taken: Iterable[CompiledEdge]) -> tuple[list[int], list[int]]:
        """Node ``i`` completed and took ``taken`` (a subset of its ``out_edges``).
        Returns (nodes that became ready, nodes that became skipped)."""
        node = self.nodes[i]
        status = self.status
        status[i] = COMPLETED
        ready: list[int] = []
        skipped: list[int] = []
        w = self.wave[i] + 1
        if not node.is_loop_controller and node.fallback is None and not node.inherited_pairs:
            # Fast path: plain arrivals, resolved inline; skips go through _propagate.
            nodes = self.nodes
            taken_targets = {e.target for e in taken}
            rest: list[tuple[int, int, bool]] = []
            for _, t in node.out_pairs:
                if t not in taken_targets:
                    rest.append((t, i, False))
                    continue
                if status[t] != PENDING:
                    rest.append((t, i, True))
                    continue
                target = nodes[t]
                if target.join_any and i not in target.back_preds:
                    self._make_ready(t, w, ready)
                elif len(target.preds) == 1 and i in target.preds and t not in self.extra_preds:
                    self._make_ready(t, w, ready)
                else:
                    rest.append((t, i, True))
            if rest:
                self._propagate(rest, w, ready, skipped)
            return ready, skipped
        taken_pairs = {(e.source, e.target) for e in taken}
        continuing = False
        if node.is_loop_controller and node.loop_start is not None:
            continuing = any(t == node.loop_start for _, t in taken_pairs)
            if continuing:
                self._reset(node.loop_body)
        pairs: Sequence[tuple[int, int]] = node.out_pairs
        original = self.fallback_for.pop(i, None)
        if original is not None and node.inherited_pairs:
            pairs = [*pairs, *(p for p in node.inherited_pairs if p[0] == original)]
        if continuing:
            # The controller runs again: its exits are decided on a later iteration.
            work = [(t, s, True) for s, t in pairs if (s, t) in taken_pairs]
        else:
            work = [(t, s, (s, t) in taken_pairs) for s, t in pairs]
        if node.fallback is not None:
            work.append((node.fallback, i, False))
        self._propagate(work, w, ready, skipped)
        return ready, skipped

    def complete_with_fallback(self, i: int) -> tuple[list[int], list[int]]:
        """Node ``i`` failed and its config fallback takes over (and later its edges)."""
        node = self.nodes[i]
        assert node.fallback is not None
        self.status[i] = COMPLETED
        self.fallback_for[node.fallback] = i
        ready: list[int] = []
        skipped: list[int] = []
        self._propagate([(node.fallback, i, True)], self.wave[i] + 1, ready, skipped)
        return ready, skipped

    def fail(self, i: int) -> None:
        self.status[i] = FAILED

    def await_(self, i: int) -> None:
        self.status[i] = AWAITING

    def resume(self, i: int, taken: Iterable[CompiledEdge]) -> tuple[list[int], list[int]]:
        if self.status[i] != AWAITING:
            raise ResumeError(f"Cannot resume: Node '{self.nodes[i].id}' is not in an awaiting state.")
        return self.complete(i, taken)

    def add_dynamic_nodes(self, nodes: list[CompiledNode], pred: int, extra_pred_of: int | None) -> None:
        """Register nodes created at run time (batch workers) with ``pred`` as their predecessor;
        they also become predecessors of ``extra_pred_of`` (the gather node)."""
        if self.nodes is self.compiled.nodes:
            self.nodes = list(self.nodes)
            self.index = dict(self.index)
        for node in nodes:
            node.index = len(self.nodes)
            self.nodes.append(node)
            self.index[node.id] = node.index
            self.status.append(PENDING)
            self.wave.append(0)
        if extra_pred_of is not None:
            self.extra_preds.setdefault(extra_pred_of, set()).update(n.index for n in nodes)

    def arrive_dynamic(self, nodes: list[CompiledNode], pred: int) -> list[int]:
        ready: list[int] = []
        skipped: list[int] = []
        self._propagate([(n.index, pred, True) for n in nodes], self.wave[pred] + 1, ready, skipped)
        return ready

    # ---------------------------------------------------------------------------------- queries
    def preds_of(self, t: int) -> Iterable[int]:
        extra = self.extra_preds.get(t)
        preds = self.nodes[t].preds
        return preds | extra if extra else preds

    def ids_with_status(self, status: int) -> list[str]:
        return [self.nodes[i].id for i, s in enumerate(self.status) if s == status]

    # --------------------------------------------------------------------------------- internals
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

    def _propagate(
        self, items: list[tuple[int, int, bool]], w: int, ready: list[int], skipped: list[int]
    ) -> None:
        """Process (target, pred, arrived?) resolutions in order; skips fan out through the queue."""
        status = self.status
        nodes = self.nodes
        work = deque(items)
        while work:
            t, p, arrived = work.popleft()
            st = status[t]
            node = nodes[t]
            if st != PENDING:
                if arrived and st == COMPLETED and node.is_loop_controller:
                    self._make_ready(t, w, ready)
                continue
            if p in node.back_preds:
                if arrived:
                    self.arrived.setdefault(t, set()).add(p)
                    if node.is_loop_controller or node.join_any or not self._waiting_on(t):
                        self._make_ready(t, w, ready)
                continue
            if arrived:
                if node.is_loop_controller or node.join_any:
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
                for s, target in node.out_pairs:
                    work.append((target, s, False))
                if node.fallback is not None:
                    work.append((node.fallback, t, False))

    def _waiting_on(self, t: int) -> bool:
        """True while some forward predecessor of ``t`` has not resolved."""
        resolved = self.resolved.get(t)
        preds = self.preds_of(t)
        if not resolved:
            return bool(preds)
        return not resolved.issuperset(preds)

    # ------------------------------------------------------------------------------- snapshots
    def snapshot(self) -> dict[str, Any]:
        """A JSON-friendly picture of the traversal, stored in an awaiting run's context so that
        ``resume`` continues exactly where the run paused."""
        nodes = self.nodes
        base = len(self.compiled.nodes)
        return {
            "status": {nodes[i].id: NodeStatus.NAMES[s] for i, s in enumerate(self.status) if s != PENDING},
            "arrived": {nodes[t].id: sorted(nodes[p].id for p in ps) for t, ps in self.arrived.items() if ps},
            "resolved": {
                nodes[t].id: sorted(nodes[p].id for p in ps) for t, ps in self.resolved.items() if ps
            },
            "waves": {nodes[i].id: w for i, w in enumerate(self.wave) if w},
            "fallbackFor": {nodes[f].id: nodes[o].id for f, o in self.fallback_for.items()},
            "dynamic": [
                {
                    "node": n.definition.to_dict(),
                    "preds": [nodes[p].id for p in sorted(n.preds)],
                    "targets": [nodes[t].id for _, t in n.out_pairs],
                }
                for n in nodes[base:]
            ],
            "extraPreds": {
                nodes[t].id: sorted(nodes[p].id for p in ps) for t, ps in self.extra_preds.items()
            },
        }
