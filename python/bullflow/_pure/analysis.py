"""Pure-Python twin of ``bullflow._core.analyze_graph`` (``rust_core/analysis.rs``).

Same results, same errors, same messages: the tests run both on the same cases. Use it through
``bullflow._impl``, which picks one of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from operator import itemgetter
from typing import TypedDict, cast

__all__ = ["GraphAnalysis", "analyze_graph"]


class GraphAnalysis(TypedDict):
    """What ``analyze_graph`` returns (a plain dict at run time)."""

    start_node_ids: list[str]
    terminal_node_ids: list[str]
    cycles: list[list[str]]
    node_count: int
    edge_count: int
    is_dag: bool


def analyze_graph(node_ids: Sequence[str], edges: Sequence[tuple[str, str] | list[str]]) -> GraphAnalysis:
    """Analyzes a workflow graph like Flowcraft's ``analyzeBlueprint``.

    ``node_ids`` is a sequence of str (duplicates allowed), ``edges`` a sequence of
    ``(source, target)`` tuples or lists of str (ids need not be declared). Returns a dict with
    ``start_node_ids``, ``terminal_node_ids``, ``cycles`` (lists of ids, first == last),
    ``node_count``, ``edge_count`` and ``is_dag``. Raises ``TypeError`` naming the index of the
    first bad element.

    * ``start_node_ids``: the entries of ``node_ids``, in order, that are the target of no edge;
      ``terminal_node_ids``: those that are the source of no edge.
    * ``cycles``: what Flowcraft's depth-first search reports, in its order. It starts from each
      declared id in order not yet visited and follows edges in order; an edge to a node on the
      current path reports ``path[path.index(target):] + [target]``. Undeclared ids have no
      outgoing edges, so no cycle goes through one.
    """
    nodes = _node_ids(node_ids)
    sources, targets = _edges(edges)

    # The distinct declared ids, in order of first declaration (each the first entry's object),
    # and the dense index of each.
    unique = list(dict.fromkeys(nodes))
    dense = dict(zip(unique, range(len(unique)), strict=True))

    is_target = set(targets)
    is_source = set(sources)
    start = [node for node in nodes if node not in is_target]
    terminal = [node for node in nodes if node not in is_source]

    # Edges between declared ids, as dense indices, in edge order. An edge to an undeclared id is
    # left out: the search would visit that id, find no outgoing edge, and leave, with no effect.
    maybe_from = list(map(dense.get, sources))
    maybe_to = list(map(dense.get, targets))
    if None in maybe_from or None in maybe_to:
        links = [(s, t) for s, t in zip(maybe_from, maybe_to, strict=True) if s is not None and t is not None]
        link_from = [s for s, _ in links]
        link_to = [t for _, t in links]
    else:
        link_from = cast("list[int]", maybe_from)
        link_to = cast("list[int]", maybe_to)
    cycles = [[unique[d] for d in cycle] for cycle in _find_cycles(len(unique), link_from, link_to)]
    return {
        "start_node_ids": start,
        "terminal_node_ids": terminal,
        "cycles": cycles,
        "node_count": len(nodes),
        "edge_count": len(sources),
        "is_dag": not cycles,
    }


_UNVISITED = -1
_DONE = -2


def _find_cycles(count: int, link_from: list[int], link_to: list[int]) -> list[list[int]]:
    """Flowcraft's recursive cycle search, iteratively, over nodes ``0..count`` and the links
    ``link_from[i] -> link_to[i]`` (in edge order). Same steps as ``find_cycles`` in
    ``rust_core/analysis.rs``; flat lists of ints rather than a list or an iterator per node,
    which keeps the garbage collector out of the way on large graphs."""
    # Adjacency in compressed form: the successors of v are targets[offsets[v]:offsets[v + 1]], in
    # edge order (``sorted`` is stable).
    order = sorted(range(len(link_from)), key=link_from.__getitem__)
    targets = list(map(link_to.__getitem__, order))
    degree = [0] * (count + 1)
    for s in link_from:
        degree[s + 1] += 1
    offsets = list(accumulate(degree))

    # state[v]: _UNVISITED, _DONE (visited, off the path) or v's index in ``path``.
    state = [_UNVISITED] * count
    path: list[int] = []
    following: list[int] = []  # following[k]: the next index into ``targets`` for path[k]
    cycles: list[list[int]] = []
    for root in range(count):
        if state[root] != _UNVISITED:
            continue
        state[root] = 0
        path.append(root)
        following.append(offsets[root])
        while path:
            node = path[-1]
            i = following[-1]
            end = offsets[node + 1]
            while i < end:
                target = targets[i]
                i += 1
                at = state[target]
                if at >= 0:
                    cycle = path[at:]
                    cycle.append(target)
                    cycles.append(cycle)
                elif at == _UNVISITED:
                    following[-1] = i
                    state[target] = len(path)
                    path.append(target)
                    following.append(offsets[target])
                    break
            else:
                path.pop()
                following.pop()
                state[node] = _DONE
    return cycles


# ---- argument checks (same messages as rust_core/py/analysis.rs) ---------------------------------


def _items(value: object) -> list[object] | None:
    """The items of a list, a tuple or another Sequence that is not str/bytes/bytearray."""
    if isinstance(value, (list, tuple)) or (
        isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))
    ):
        return list(value)
    return None


def _node_ids(node_ids: object) -> list[str]:
    items = _items(node_ids)
    if items is None:
        raise TypeError(f"node_ids must be a sequence of str, not {type(node_ids).__name__}")
    if not set(map(type, items)) <= {str}:  # fast path: all exactly str
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(f"node_ids[{i}] must be a str, not {type(item).__name__}")
    return cast("list[str]", items)


def _edges(edges: object) -> tuple[list[str], list[str]]:
    """The sources and the targets of the edges, in order."""
    items = _items(edges)
    if items is None:
        raise TypeError(f"edges must be a sequence of (source, target) pairs, not {type(edges).__name__}")
    # Fast path, all in C: exact tuples or lists, of 2 exact strs each. Anything else (a subclass,
    # or an error to report) takes the loop below.
    if set(map(type, items)) <= {tuple, list}:
        pairs = cast("list[tuple[object, object]]", items)
        if set(map(len, pairs)) <= {2}:
            sources = list(map(itemgetter(0), pairs))
            targets = list(map(itemgetter(1), pairs))
            if set(map(type, sources)) <= {str} and set(map(type, targets)) <= {str}:
                return cast("list[str]", sources), cast("list[str]", targets)
    checked_sources: list[str] = []
    checked_targets: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)):
            raise TypeError(f"edges[{i}] must be a (source, target) tuple, not {type(item).__name__}")
        if len(item) != 2:
            raise TypeError(f"edges[{i}] must have 2 items (source, target), not {len(item)}")
        source, target = item
        if not isinstance(source, str):
            raise TypeError(f"edges[{i}][0] must be a str, not {type(source).__name__}")
        if not isinstance(target, str):
            raise TypeError(f"edges[{i}][1] must be a str, not {type(target).__name__}")
        checked_sources.append(source)
        checked_targets.append(target)
    return checked_sources, checked_targets
