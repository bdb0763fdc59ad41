"""Per-script latency of the Lua coordination scripts (``lua/``), one call each (FCALL of the
library's function) through :class:`RedisCoordinationStore` (or :class:`ScriptRunner` where the
store has no method), next to the same operation done by :class:`PythonCoordinationStore`
(WATCH/MULTI from the client) where it has one. Groups "scripts: <name>", ``extra_info["impl"]`` "lua" / "python".

Every round gets fresh state from a setup function that is not timed (a new run, lock name,
graph key or job), so each timed call does the same work; the result of every timed call is
checked. The time includes one ``loop.run_until_complete`` (a few microseconds, the same for
both implementations) and a loopback round trip.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bullmq import Worker  # type: ignore[import-untyped]
from redis.asyncio import Redis

from bullflow import keys
from bullflow.blueprint import load_blueprint
from bullflow.compile import CompiledBlueprint, compile_blueprint
from bullflow.coordination import (
    CommitResult,
    CoordinationStore,
    NodeCommit,
    RedisCoordinationStore,
    RunOptions,
    graph_fields,
)
from bullflow.job_batch import FINISH_KEYS, decode_finish_replies
from bullflow.python_coordination import PythonCoordinationStore
from bullflow.scripts import ScriptCode, ScriptRunner
from bullflow.settings import RedisSettings

ROUNDS = 200
IMPLS = ["lua", "python"]
OPTIONS = RunOptions()
TOKEN = "bench-token"
LOCK_MS = 30_000


def blueprint(nodes: list[str], edges: list[str], id: str) -> CompiledBlueprint:
    return compile_blueprint(
        load_blueprint(
            {
                "id": id,
                "nodes": [{"id": n, "uses": "nothing"} for n in nodes],
                "edges": [dict(zip(("source", "target"), e.split(">"), strict=True)) for e in edges],
            }
        )
    )


SINGLE = blueprint(["n0"], [], "single")
CHAIN = blueprint(["a", "b", "c"], ["a>b", "b>c"], "chain-3")
DIAMOND = blueprint(["a", "b", "c", "d"], ["a>b", "a>c", "b>d", "c>d"], "diamond")
CHAIN_20 = blueprint([f"n{i}" for i in range(20)], [f"n{i - 1}>n{i}" for i in range(1, 20)], "chain-20")
OUTPUT = '"out"'


@dataclass
class Env:
    """A store of one implementation on a queue of its own, on a private event loop."""

    run: Callable[[Callable[[], Awaitable[Any]]], Any]
    redis: Redis
    store: CoordinationStore
    impl: str
    queue: str

    def aw(self, coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        return self.run(wrap)

    def new_run(self, compiled: CompiledBlueprint, *commits: str) -> str:
        """Start a run of ``compiled`` and complete the nodes ``commits`` (ids), untimed."""
        run_id = uuid.uuid4().hex
        started = self.aw(self.store.start_run(run_id, compiled, [], OPTIONS))
        assert started.code == ScriptCode.STORED
        for node in commits:
            done = self.aw(self.store.complete_node(commit(run_id, compiled, node)))
            assert done.code == ScriptCode.STORED
        return run_id


def commit(run_id: str, compiled: CompiledBlueprint, node: str, **kw: Any) -> NodeCommit:
    return NodeCommit(
        run_id,
        compiled.content_hash,
        compiled.index[node],
        0,
        writes=[(f"_outputs.{node}", OUTPUT)],
        **kw,
    )


@pytest.fixture(params=IMPLS)
def env(request: pytest.FixtureRequest, redis_server: str) -> Iterator[Env]:
    loop = asyncio.new_event_loop()

    def run(factory: Callable[[], Awaitable[Any]]) -> Any:
        return loop.run_until_complete(factory())

    redis = RedisSettings.from_url(redis_server).client()
    queue = f"bench-scripts-{uuid.uuid4().hex[:8]}"
    store: CoordinationStore = (
        RedisCoordinationStore(redis, queue)
        if request.param == "lua"
        else PythonCoordinationStore(redis, queue)
    )
    try:
        yield Env(run, redis, store, request.param, queue)
    finally:
        run(redis.aclose)
        loop.close()


def measure(
    benchmark: Any, env: Env, name: str, setup: Callable[[], Any], call: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """Time ``call(state)`` once per round, ``state`` from an untimed ``setup()``; returns the
    results of every timed call."""
    results: list[Any] = []

    def prepare() -> tuple[tuple[Any], dict[str, Any]]:
        return (setup(),), {}

    def target(state: Any) -> None:
        results.append(env.aw(call(state)))

    benchmark.group = f"scripts: {name}"
    # "coordination" makes bench/report.py print "lua is Nx python" (its impl ratio is rust/python)
    benchmark.extra_info.update(impl=env.impl, coordination=env.impl)
    benchmark.pedantic(target, setup=prepare, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    assert results
    return results


def check(results: list[CommitResult], code: ScriptCode, enqueued: int, status: str | None) -> None:
    for result in results:
        assert (result.code, result.enqueued, result.status) == (code, enqueued, status), result


# ------------------------------------------------------------------------------- the cases
def test_start_run(benchmark: Any, env: Env) -> None:
    env.aw(env.store.store_graph(DIAMOND))
    results = measure(
        benchmark,
        env,
        "startRun (diamond)",
        lambda: uuid.uuid4().hex,
        lambda run_id: env.store.start_run(run_id, DIAMOND, [("topic", '"x"')], OPTIONS),
    )
    check(results, ScriptCode.STORED, 1, "running")


def test_complete_node_chain_step(benchmark: Any, env: Env) -> None:
    results = measure(
        benchmark,
        env,
        "completeNode chain step",
        lambda: env.new_run(CHAIN),
        lambda run_id: env.store.complete_node(commit(run_id, CHAIN, "a")),
    )
    check(results, ScriptCode.STORED, 1, "running")


def test_complete_node_join_first_arrival(benchmark: Any, env: Env) -> None:
    results = measure(
        benchmark,
        env,
        "completeNode join, first arrival",
        lambda: env.new_run(DIAMOND, "a"),
        lambda run_id: env.store.complete_node(commit(run_id, DIAMOND, "b")),
    )
    check(results, ScriptCode.STORED, 0, "running")


def test_complete_node_join_last_arrival(benchmark: Any, env: Env) -> None:
    results = measure(
        benchmark,
        env,
        "completeNode join, last arrival",
        lambda: env.new_run(DIAMOND, "a", "b"),
        lambda run_id: env.store.complete_node(commit(run_id, DIAMOND, "c")),
    )
    check(results, ScriptCode.STORED, 1, "running")


def test_complete_node_final(benchmark: Any, env: Env) -> None:
    """The last node: the run completes, its status is written (with the context) and published."""
    runs: list[str] = []

    def setup() -> str:
        runs.append(env.new_run(SINGLE))
        return runs[-1]

    results = measure(
        benchmark,
        env,
        "completeNode final (publishes status)",
        setup,
        lambda run_id: env.store.complete_node(commit(run_id, SINGLE, "n0")),
    )
    check(results, ScriptCode.STORED, 0, "completed")
    assert env.aw(env.redis.get(keys.status_key(runs[-1]))) is not None


def test_fail_node(benchmark: Any, env: Env) -> None:
    results = measure(
        benchmark,
        env,
        "failNode",
        lambda: env.new_run(SINGLE),
        lambda run_id: env.store.fail_node(run_id, SINGLE.content_hash, 0, 0, "boom"),
    )
    check(results, ScriptCode.STORED, 0, "failed")


def test_cancel_run(benchmark: Any, env: Env) -> None:
    results = measure(
        benchmark,
        env,
        "cancelRun",
        lambda: env.new_run(DIAMOND),
        lambda run_id: env.store.cancel_run(run_id, "stop"),
    )
    check(results, ScriptCode.STORED, 0, "cancelled")


def test_resume_node(benchmark: Any, env: Env) -> None:
    def setup() -> str:
        run_id = env.new_run(CHAIN)
        waiting = env.aw(
            env.store.complete_node(commit(run_id, CHAIN, "a", mode="await", awaiting={"reason": "approval"}))
        )
        assert waiting.code == ScriptCode.STORED
        return run_id

    results = measure(
        benchmark,
        env,
        "resumeNode",
        setup,
        lambda run_id: env.store.resume_node(run_id, CHAIN.content_hash, "a", {"output": "yes"}),
    )
    for code, node, _ in results:
        assert (code, node) == (ScriptCode.STORED, "a")


def test_ready_nodes(benchmark: Any, env: Env) -> None:
    """The reconciler's read of a running diamond: b and c queued."""
    results = measure(
        benchmark,
        env,
        "readyNodes",
        lambda: env.new_run(DIAMOND, "a"),
        lambda run_id: env.store.ready_nodes(run_id, DIAMOND.content_hash),
    )
    for code, nodes in results:
        assert code == ScriptCode.STORED or code == ScriptCode.ALREADY_PRESENT, code
        assert sorted((n.node_id, n.state) for n in nodes) == [("b", "queued"), ("c", "queued")]


def test_acquire_lock(benchmark: Any, env: Env) -> None:
    results = measure(
        benchmark,
        env,
        "acquireLock",
        lambda: f"bench-{uuid.uuid4().hex}",
        lambda name: env.store.acquire_lock(name, "token", 60_000),
    )
    assert all(r is True for r in results)


def test_store_graph(benchmark: Any, env: Env) -> None:
    """A 20-node chain's graph written once (the key deleted and a fresh store made per round:
    both stores remember what they have stored)."""

    def setup() -> CoordinationStore:
        env.aw(env.redis.delete(keys.graph_key(CHAIN_20.content_hash)))
        if env.impl == "lua":
            return RedisCoordinationStore(env.redis, env.queue)
        return PythonCoordinationStore(env.redis, env.queue)

    results = measure(
        benchmark, env, "storeGraph (chain-20)", setup, lambda store: store.store_graph(CHAIN_20)
    )
    assert all(r is True for r in results)
    stored = env.aw(env.redis.hgetall(keys.graph_key(CHAIN_20.content_hash)))  # type: ignore[arg-type]
    assert len(stored) * 2 == len(graph_fields(CHAIN_20))


def finish_head(prefix: str) -> tuple[Any, ...]:
    """finishJobs' ARGV[1..5]."""
    return (prefix, LOCK_MS, keys.RUN_PREFIX, keys.STATE_PREFIX, keys.GRAPH_PREFIX)


async def _never(job: Any, token: str) -> None:  # the worker never runs: jobs are taken by hand
    raise AssertionError("not called")


def test_finish_job(benchmark: Any, redis_server: str, run_async: Any) -> None:
    """The worker's fast path (lua only): complete the active node job and take the next one, as
    in steady state: each round's setup starts one 1-node run (its job waits), the timed call
    completes the job the previous call took and takes that one."""
    settings = RedisSettings.from_url(redis_server)
    redis = settings.client()
    queue = f"bench-finish-{uuid.uuid4().hex[:8]}"
    store = RedisCoordinationStore(redis, queue)
    runner = ScriptRunner(redis)
    qk = keys.queue_keys(queue)
    prefix = keys.queue_key_prefix(queue)
    connection = {"host": settings.host, "port": settings.port, "socket_timeout": None}
    counter = itertools.count()
    worker: Any = None

    async def start() -> str:
        run_id = f"r{next(counter)}"
        started = await store.start_run(run_id, SINGLE, [], OPTIONS)
        assert started.code == ScriptCode.STORED
        return keys.job_id(run_id, "n0")

    async def first() -> str:
        nonlocal worker
        worker = Worker(queue, _never, {"connection": connection, "autorun": False, "lockDuration": LOCK_MS})
        await start()
        job = await worker.getNextJob(TOKEN)  # bullmq's moveToActive takes the first one
        assert job is not None
        return str(job.id)

    active = [run_async(first)]
    taken: list[str] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        run_async(start)
        return (active[-1],), {}

    def finish(job_id: str) -> None:
        raw = run_async(
            lambda: runner.run(
                "finishJobs",
                [qk[name] for name in FINISH_KEYS],
                [*finish_head(prefix), 1, job_id, TOKEN, -1, "604800", "1", 0],
            )
        )
        [reply] = decode_finish_replies(raw)
        assert int(reply[0]) == ScriptCode.STORED and reply[1], reply
        next_id = reply[1][1]
        next_id = next_id.decode() if isinstance(next_id, bytes) else str(next_id)
        taken.append(job_id)
        active.append(next_id)

    benchmark.group = "scripts: finishJobs (one job: complete + take next)"
    benchmark.extra_info.update(impl="lua", coordination="lua")
    try:
        benchmark.pedantic(finish, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=5)
        assert taken
        completed = run_async(lambda: redis.zrange(qk["completed"], 0, -1))
        assert {c.decode() for c in completed} == set(taken)
    finally:
        if worker is not None:
            run_async(lambda: asyncio.wait_for(worker.close(), 10))
        run_async(redis.aclose)
