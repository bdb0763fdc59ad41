"""Rust core vs its pure-Python twin (`make bench` prints the ratios): the wire codec (decode of a
10-field and a 1,000-field context, encode of a node's writes, job payloads), analysis+compile of
10, 1,000 and 100,000-node blueprints, and scheduler steps per second. Every benchmark checks the
result it timed.

Bars (issue 3): >= 3x for whole-context decode, >= 20x for analysis+compile at 100,000 nodes,
>= 1,000,000 scheduler steps/s in Rust.
"""

from __future__ import annotations

import json
import random
from functools import cache
from types import ModuleType
from typing import Any

import pytest

import bullflow._core as core
import bullflow._pure as pure

IMPLS = {"rust": core, "python": pure}
WORDS = ["alpha", "beta", "gamma", "delta", "épsilon", "zeta", "ηta", "theta", "iota", "kappa"]


def _value(rnd: random.Random, i: int) -> Any:
    """A context value like the ones nodes write: short strings, ints, floats, small objects,
    arrays of 5 to 50 elements, nested records."""
    kind = i % 6
    if kind == 0:
        return f"{rnd.choice(WORDS)}-{i}"
    if kind == 1:
        return rnd.randrange(-(10**6), 10**9)
    if kind == 2:
        return round(rnd.uniform(-1e6, 1e6), rnd.randrange(0, 6))
    if kind == 3:
        return {
            "id": i,
            "name": f"{rnd.choice(WORDS)} {rnd.choice(WORDS)}",
            "score": rnd.random(),
            "ok": rnd.random() < 0.5,
            "tags": [rnd.choice(WORDS) for _ in range(5)],
            "meta": None,
        }
    if kind == 4:
        return [rnd.choice([rnd.randrange(1000), rnd.random() * 100]) for _ in range(rnd.randrange(5, 51))]
    return [
        {
            "sku": f"sku-{rnd.randrange(10**6)}",
            "qty": rnd.randrange(1, 10),
            "price": round(rnd.uniform(1, 500), 2),
        }
        for _ in range(rnd.randrange(5, 21))
    ]


def _context(fields: int) -> dict[str, Any]:
    rnd = random.Random(fields)
    context: dict[str, Any] = {"runId": "run-1", "blueprintId": "bp-1"}
    for i in range(fields - len(context)):
        context[f"_outputs.node{i}" if i % 3 else f"input{i}"] = _value(rnd, i)
    return context


def _reply(context: dict[str, Any]) -> dict[bytes, bytes]:
    """What redis-py's HGETALL gives for a context stored by HSET: bytes -> bytes."""
    args = core.encode_hset_args(context)
    return dict(zip(args[::2], args[1::2], strict=True))


CONTEXTS = {fields: _context(fields) for fields in (10, 1000)}
REPLIES = {fields: _reply(context) for fields, context in CONTEXTS.items()}
WRITES = {
    "_outputs.fetch": {"status": 200, "items": [{"id": 1, "title": "Zoë"}, {"id": 2, "title": "x"}]},
    "_outputs.score": 0.8731,
    "_outputs.count": 42,
    "_outputs.label": "approved",
    "_outputs.flags": [True, False, None, 1.5e-7],
}
PAYLOAD = {"runId": "run-4f3a9c", "blueprintId": "content-moderation", "nodeId": "classify", "attempt": 1}


def _info(benchmark: Any, case: str, impl: str) -> None:
    benchmark.group = f"core: {case}"
    benchmark.extra_info["impl"] = impl


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("fields", [10, 1000])
def test_decode_context(benchmark: Any, impl: str, fields: int) -> None:
    module: ModuleType = IMPLS[impl]
    reply, expected = REPLIES[fields], CONTEXTS[fields]
    _info(benchmark, f"decode context, {fields} fields", impl)
    result = benchmark(module.decode_hash, reply)
    assert result == expected and list(result) == list(expected)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_encode_node_writes(benchmark: Any, impl: str) -> None:
    module: ModuleType = IMPLS[impl]
    _info(benchmark, "encode node writes (HSET args, 5 values)", impl)
    result = benchmark(module.encode_hset_args, WRITES)
    assert result[::2] == [key.encode() for key in WRITES]
    assert [core.decode_value(value) for value in result[1::2]] == list(WRITES.values())
    assert result[3] == b"0.8731" and result[9] == b"[true,false,null,1.5e-7]"


@pytest.mark.parametrize("impl", list(IMPLS))
def test_encode_job_payload(benchmark: Any, impl: str) -> None:
    module: ModuleType = IMPLS[impl]
    _info(benchmark, "encode job payload", impl)
    result = benchmark(module.encode_job_payload, PAYLOAD)
    assert (
        result == b'{"runId":"run-4f3a9c","blueprintId":"content-moderation","nodeId":"classify","attempt":1}'
    )


@pytest.mark.parametrize("impl", list(IMPLS))
def test_decode_job_payload(benchmark: Any, impl: str) -> None:
    module: ModuleType = IMPLS[impl]
    data = core.encode_job_payload(PAYLOAD)
    _info(benchmark, "decode job payload", impl)
    result = benchmark(module.decode_job_payload, data)
    assert result == PAYLOAD and list(result) == list(PAYLOAD)


# ----------------------------------------------------------------------------------- graph
BLOCK = 5  # head -> three branches -> join


@cache
def blueprint_text(n: int) -> str:
    """A blueprint of ``n`` nodes as its JSON text, the same every time: a chain of blocks (a head
    fanning out to three branches that meet again at an 'all' join, every 50th an 'any' join),
    with a conditional and an action edge in every block, a loop (a controller re-running a
    two-node body until it breaks out) and a node with a fallback; whatever does not fill a
    whole block is a plain chain at the end."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []

    def node(uses: str = "task", **config: Any) -> str:
        i = len(nodes)
        node_id = f"n{i}"
        entry: dict[str, Any] = {
            "id": node_id,
            "uses": uses,
            "params": {"step": i, "weight": round(0.25 + (i % 7) / 8, 3), "label": f"step {i}"},
        }
        if config:
            entry["config"] = config
        nodes.append(entry)
        return node_id

    def edge(source: str, target: str, **extra: Any) -> None:
        edges.append({"source": source, "target": target, **extra})

    last = node()
    if n >= 10:
        # The loop: last -> ctrl -(continue)-> body1 -> body2 -> ctrl -(break)-> after.
        ctrl = node("loop-controller")
        body1, body2 = node(), node()
        edge(last, ctrl)
        edge(ctrl, body1, action="continue")
        edge(body1, body2)
        edge(body2, ctrl)
        after = node()
        edge(ctrl, after, action="break")
        # The fallback: risky falls back to rescue, which carries risky's edges.
        rescue = node()
        risky = node(fallback=rescue)
        edge(after, risky)
        last = risky
    block = 0
    while len(nodes) + BLOCK <= n:
        head = node()
        edge(last, head)
        branches = [node(), node(), node()]
        join = node(joinStrategy="any" if block % 50 == 49 else "all")
        edge(head, branches[0], condition="context.value > 10")
        edge(head, branches[1], action="ok")
        edge(head, branches[2])
        for b in branches:
            edge(b, join)
        last = join
        block += 1
    while len(nodes) < n:
        nxt = node()
        edge(last, nxt)
        last = nxt
    blueprint = {"id": f"bench-{n}", "nodes": nodes, "edges": edges, "metadata": {"version": "1"}}
    return json.dumps(blueprint)


@pytest.mark.parametrize("impl", ["rust", "python"])
@pytest.mark.parametrize("n", [10, 1_000, 100_000], ids=["10", "1000", "100000"])
def test_compile(benchmark: Any, impl: str, n: int) -> None:
    module: ModuleType = IMPLS[impl]
    text = blueprint_text(n)
    benchmark.group = f"core: compile {n:,} nodes"
    benchmark.extra_info.update(impl=impl, nodes=n)

    def run() -> dict[str, Any]:
        analysis: dict[str, Any] = module.compile_graph(text).analysis()
        return analysis

    if n >= 100_000:
        analysis = benchmark.pedantic(run, rounds=5 if impl == "rust" else 3, iterations=1, warmup_rounds=0)
    else:
        analysis = benchmark(run)
    assert analysis["node_count"] == n
    assert len(analysis["topological_order"]) == n
    assert analysis["is_dag"] == (n < 10)
    assert analysis["start_node_ids"] == (["n0"] if n < 10 else ["n0", "n5"])  # n5: the fallback
    if n >= 10:
        assert analysis["loops"] == {"n1": ["n2", "n3"]}
        assert analysis["unreachable_node_ids"] == []
    # Both implementations compile to the same version.
    assert module.compile_graph(text).content_hash == pure.compile_graph(json.loads(text)).content_hash


@cache
def chain_text(n: int) -> str:
    nodes = [{"id": f"n{i}", "uses": "task"} for i in range(n)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    return json.dumps({"id": f"chain-{n}", "nodes": nodes, "edges": edges, "metadata": {}})


@pytest.mark.parametrize("impl", ["rust", "python"])
def test_scheduler_steps(benchmark: Any, impl: str) -> None:
    module: ModuleType = IMPLS[impl]
    n = 10_000
    graph = module.compile_graph(chain_text(n))
    benchmark.group = "core: scheduler steps"
    benchmark.extra_info.update(impl=impl, nodes=n)

    def run() -> int:
        state = module.RunState(graph, n + 1)  # a fresh run each round
        complete = state.complete
        ready = state.start()
        steps = 0
        while ready:
            ready = complete(ready[0], None)[0]
            steps += 1
        return steps

    assert benchmark(run) == n
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["steps_per_s"] = round(n / stats.stats.median)
