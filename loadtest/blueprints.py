"""The blueprint shapes the load test starts, all ``nothing`` nodes from ``tests.integration.nodes``:
a 20-node chain, a 20-wide fan-out into an all-join and the 4-node diamond
(``bench/test_bench_distributed.py`` builds its sizes with the same functions)."""

from __future__ import annotations

from typing import Any


def chain(n: int) -> dict[str, Any]:
    return {
        "id": f"chain-{n}",
        "nodes": [{"id": f"n{i}", "uses": "nothing"} for i in range(n)],
        "edges": [{"source": f"n{i - 1}", "target": f"n{i}"} for i in range(1, n)],
    }


def fanout(width: int) -> dict[str, Any]:
    return {
        "id": f"fanout-{width}",
        "nodes": [
            {"id": "source", "uses": "nothing"},
            *({"id": f"w{i}", "uses": "nothing"} for i in range(width)),
            {"id": "join", "uses": "nothing"},
        ],
        "edges": [
            *({"source": "source", "target": f"w{i}"} for i in range(width)),
            *({"source": f"w{i}", "target": "join"} for i in range(width)),
        ],
    }


DIAMOND: dict[str, Any] = {
    "id": "diamond",
    "nodes": [{"id": x, "uses": "nothing"} for x in "abcd"],
    "edges": [
        {"source": "a", "target": "b"},
        {"source": "a", "target": "c"},
        {"source": "b", "target": "d"},
        {"source": "c", "target": "d"},
    ],
}

BLUEPRINTS: list[dict[str, Any]] = [chain(20), fanout(20), DIAMOND]
