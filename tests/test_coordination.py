"""Run coordination against a real redis-server, for both coordination stores: the Lua scripts
(``RedisCoordinationStore``, "lua" as functions of the library, "lua-scripts" as scripts) and
their client-side WATCH/MULTI twin (``PythonCoordinationStore``, "python").

Every behavioural test runs on each store; ``test_both_stores_leave_identical_state`` drives the
same scenario through each (on its own run and queue) and, after every call, compares every key
they have written, byte for byte up to the run id, the queue name and timestamps (and, for a
state hash Redis keeps as a hash table, the order of the status JSON's context members: see
``bullflow.python_coordination``)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue, Worker  # type: ignore[import-untyped]
from redis.asyncio import Redis

from bullflow import keys
from bullflow.blueprint import load_blueprint
from bullflow.compile import CompiledBlueprint, compile_blueprint
from bullflow.coordination import (
    CommitResult,
    CoordinationStore,
    NodeCommit,
    ReadyNode,
    RedisCoordinationStore,
    RunOptions,
)
from bullflow.python_coordination import PythonCoordinationStore
from bullflow.scripts import ScriptCode
from bullflow.settings import RedisSettings

GOLDEN: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "scheduler_golden.json").read_text()
)
STATUS_NAMES = ("pending", "ready", "running", "completed", "skipped", "failed", "awaiting")
LOOP_MESSAGE = "Traversal exceeded maximum iterations, possible infinite loop"
# "lua": the scripts as functions of the library (FCALL); "lua-scripts": the same Lua as scripts
# (EVALSHA), as on a server without functions
STORES = ["lua", "lua-scripts", "python"]


def make_store(kind: str, redis: Redis, queue: str) -> CoordinationStore:
    if kind in ("lua", "lua-scripts"):
        return RedisCoordinationStore(redis, queue, functions=kind == "lua")
    return PythonCoordinationStore(redis, queue)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, redis_client: Redis, key_prefix: str) -> CoordinationStore:
    return make_store(request.param, redis_client, key_prefix)


def bp(nodes: Sequence[Any], edges: Sequence[Any], id: str = "g") -> dict[str, Any]:
    """A blueprint: nodes as ids or dicts, edges as "A>B" or dicts."""
    return {
        "id": id,
        "nodes": [{"id": n, "uses": "x"} if isinstance(n, str) else n for n in nodes],
        "edges": [
            dict(zip(("source", "target"), e.split(">"), strict=True)) if isinstance(e, str) else e
            for e in edges
        ],
    }


def compiled(blueprint: dict[str, Any]) -> CompiledBlueprint:
    return compile_blueprint(load_blueprint(blueprint))


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Driver:
    """One run of one blueprint on one store, addressed by node id."""

    def __init__(
        self, store: CoordinationStore, redis: Redis, blueprint: dict[str, Any], run: str, queue: str
    ):
        self.store = store
        self.redis = redis
        self.compiled = compiled(blueprint)
        self.run = run
        self.queue = queue
        self.log: list[Any] = []
        self.dumps: list[dict[str, Any]] | None = None  # every key after every call, when set

    @property
    def hash(self) -> str:
        return self.compiled.content_hash

    def index(self, node: str | int) -> int:
        if isinstance(node, int):
            return node
        return int(node[1:]) if node.startswith("#") else self.compiled.index[node]

    def edge(self, source: str, target: str) -> int:
        edges = self.compiled.blueprint.edges
        return next(e for e, edge in enumerate(edges) if (edge.source, edge.target) == (source, target))

    async def fields(self) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.run_key(self.run))  # type: ignore[misc]
        return {text(k): text(v) for k, v in raw.items()}

    async def iteration(self, i: int) -> int:
        return int(text(await self.redis.hget(keys.run_key(self.run), f"it:{i}") or b"0"))  # type: ignore[misc]

    async def statuses(self) -> dict[int, int]:
        f = await self.fields()
        count = int(f.get("n", 0)) + int(f.get("nd", 0))
        return {i: int(f.get(f"s:{i}", 0)) for i in range(count)}

    async def node_id(self, i: int) -> str:
        if i < len(self.compiled.nodes):
            return self.compiled.nodes[i].id
        f = await self.fields()
        return str(json.loads(f[f"d:{i}"])["id"])

    async def job_id(self, i: int) -> str:
        return keys.job_id(self.run, await self.node_id(i), await self.iteration(i))

    async def wait(self) -> list[str]:
        qk = keys.queue_keys(self.queue)
        return [text(j) for j in await self.redis.lrange(qk["wait"], 0, -1)]  # type: ignore[misc]

    async def _record(self, result: Any) -> Any:
        self.log.append(result)
        if self.dumps is not None:
            self.dumps.append(await dump(self.redis, self.run, self.queue))
        return result

    async def start(
        self, context: Sequence[tuple[str, str]] = (), *, adopt: bool = False, **options: Any
    ) -> CommitResult:
        result = await self.store.start_run(
            self.run, self.compiled, list(context), RunOptions(**options), adopt=adopt
        )
        return await self._record(result)  # type: ignore[no-any-return]

    async def complete(
        self, node: str | int, taken: Sequence[int] | None = None, iteration: int | None = None, **kw: Any
    ) -> CommitResult:
        i = self.index(node)
        it = await self.iteration(i) if iteration is None else iteration
        commit = NodeCommit(self.run, self.hash, i, it, taken=None if taken is None else list(taken), **kw)
        return await self._record(await self.store.complete_node(commit))  # type: ignore[no-any-return]

    async def fail(self, node: str | int, message: str = "boom") -> CommitResult:
        i = self.index(node)
        result = await self.store.fail_node(self.run, self.hash, i, await self.iteration(i), message)
        return await self._record(result)  # type: ignore[no-any-return]

    async def resume(
        self, node: str | None, payload: dict[str, Any]
    ) -> tuple[ScriptCode, str | None, str | None]:
        return await self._record(await self.store.resume_node(self.run, self.hash, node, payload))  # type: ignore[no-any-return]

    async def cancel(self, reason: str = "stop") -> CommitResult:
        return await self._record(await self.store.cancel_run(self.run, reason))  # type: ignore[no-any-return]

    async def ready_nodes(self) -> tuple[ScriptCode, list[ReadyNode]]:
        return await self._record(await self.store.ready_nodes(self.run, self.hash))  # type: ignore[no-any-return]

    async def status_json(self) -> dict[str, Any]:
        raw = await self.redis.get(keys.status_key(self.run))
        assert raw is not None
        return dict(json.loads(raw))


async def drain(pubsub: Any, settle: float = 0.3) -> list[str]:
    """The messages received on a subscription within ``settle`` seconds."""
    out: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            out.append(text(message["data"]))
    return out


# ---------------------------------------------------------------------------------- golden
def _dynamic(step: dict[str, Any], index: Callable[[str], int]) -> dict[str, Any]:
    new = step["new"]
    workers, rest = new[: step["workers"]], new[step["workers"] :]

    def node(n: int) -> list[str]:
        return [f"dyn{n}", json.dumps({"id": f"dyn{n}", "uses": "x"})]

    dynamic: dict[str, Any] = {
        "gather": index(step["gather"]) if step.get("gather") else -1,
        "workers": [node(n) for n in workers],
    }
    if step["continuation"]:
        dynamic["continuation"] = node(rest[0])
    return dynamic


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
async def test_golden_scheduler_cases(
    store: CoordinationStore, redis_client: Redis, key_prefix: str, case: dict[str, Any]
) -> None:
    """Each golden case, replayed through start_run / complete_node (and fail_node, resume_node):
    after every step the nodes that became ready and skipped are the golden ones, and exactly the
    newly ready nodes (plus a resumed node) got jobs. "running" has no distributed equivalent (a
    queued and a running node are both ready in the run hash) and is skipped; "add_dynamic",
    the scatter's "complete" and "arrive" are one complete_node with ``dynamic``."""
    d = Driver(store, redis_client, case["blueprint"], f"{key_prefix}-run", key_prefix)
    names = d.compiled.graph.node_ids

    def name(i: int) -> str:
        return names[i] if i < len(names) else f"#{i}"

    steps = case["steps"]
    k = 0
    while k < len(steps):
        step = steps[k]
        op = step["op"]
        where = f"{case['name']}: step {k} {step}"
        if op == "running":
            k += 1
            continue
        before = await d.statuses()
        wait_before = set(await d.wait())
        expect_ready = set(step.get("ready", []))
        expect_skipped = set(step.get("skipped", []))
        extra_jobs: set[str] = set()
        if op == "start":
            result = await d.start(max_waves=case["max_waves"])
            assert result.code == ScriptCode.STORED, where
        elif op == "complete":
            result = await d.complete(step["node"], step["taken"])
            assert result.code == ScriptCode.STORED, where
            if "error" in step:
                assert step["error"] == "InfiniteLoopError", where
                assert result.status == "failed", where
                errors = json.loads((await d.fields())["err"])
                assert errors[-1]["message"] == LOOP_MESSAGE == step["message"]
        elif op == "add_dynamic":
            scatter, arrive = steps[k + 1], steps[k + 2]
            assert scatter["op"] == "complete" and scatter["node"] == step["pred"], where
            assert arrive["op"] == "arrive" and arrive["pred"] == step["pred"], where
            assert arrive["nodes"] == step["new"][: step["workers"]], where
            result = await d.complete(step["pred"], scatter["taken"], dynamic=_dynamic(step, d.index))
            assert result.code == ScriptCode.STORED, where
            expect_ready = set(scatter["ready"]) | set(arrive["ready"])
            expect_skipped = set(scatter["skipped"])
            k += 2
        elif op == "complete_with_fallback":
            result = await d.complete(step["node"], mode="fallback")
            assert result.code == ScriptCode.STORED, where
        elif op == "fail":
            result = await d.fail(step["node"])
            assert result.code == ScriptCode.STORED, where
        elif op == "suspend":
            result = await d.complete(step["node"], mode="await")
            assert result.code == ScriptCode.STORED, where
        elif op == "resume":
            code, node_id, job_id = await d.resume(step["node"], {})
            if "error" in step:
                assert step["error"] == "ResumeError" and code == ScriptCode.NOT_AWAITING, where
            else:
                assert code == ScriptCode.STORED and node_id == step["node"], where
                assert job_id is not None
                extra_jobs.add(job_id)
                result = await d.complete(step["node"], step["taken"])
                assert result.code == ScriptCode.STORED, where
        else:
            raise AssertionError(f"unknown op {op!r}")
        after = await d.statuses()
        ready = {i for i, s in after.items() if s == 1 and before.get(i) != 1}
        skipped = {i for i, s in after.items() if s == 4 and before.get(i) != 4}
        assert {name(i) for i in ready} == expect_ready, where
        assert {name(i) for i in skipped} == expect_skipped, where
        jobs = set(await d.wait()) - wait_before
        assert jobs == {await d.job_id(i) for i in ready} | extra_jobs, where
        k += 1
    final = {name(i): STATUS_NAMES[s] for i, s in (await d.statuses()).items()}
    assert final == case["final_status"]


# ------------------------------------------------------------------------------ bullmq jobs
async def test_jobs_are_bullmq_jobs(
    store: CoordinationStore, redis_client: Redis, redis_settings: RedisSettings, key_prefix: str
) -> None:
    blueprint = bp(
        ["A", {"id": "R", "uses": "x", "config": {"maxRetries": 3, "retryDelay": 100}}, "B"],
        ["A>B", "R>B"],
        id="wire",
    )
    d = Driver(store, redis_client, blueprint, f"{key_prefix}-run", key_prefix)
    result = await d.start()
    assert (result.code, result.enqueued, result.status) == (ScriptCode.STORED, 2, "running")
    run = d.run
    connection = {"host": redis_settings.host, "port": redis_settings.port, "socket_timeout": None}
    queue = Queue(key_prefix, {"connection": connection})
    try:
        counts = await queue.getJobCounts("wait", "active", "delayed", "completed", "failed")
        assert counts == {"wait": 2, "active": 0, "delayed": 0, "completed": 0, "failed": 0}
        assert {job.id for job in await queue.getJobs(["wait"])} == {f"{run}_A", f"{run}_R"}
        job = await queue.getJob(f"{run}_R")
        assert job is not None and job.name == "executeNode"
        assert job.data == {"runId": run, "blueprintId": "wire", "nodeId": "R"}
        assert job.opts["jobId"] == f"{run}_R" and job.opts["attempts"] == 3
        assert job.opts["backoff"] == {"type": "fixed", "delay": 100}
        assert job.opts["removeOnComplete"] == {"age": 604800}
        plain = await queue.getJob(f"{run}_A")
        assert plain is not None and plain.data == {"runId": run, "blueprintId": "wire", "nodeId": "A"}
        assert await queue.getJob(f"{run}_B") is None

        seen: dict[str, Any] = {}
        both = asyncio.Event()

        async def process(job: Any, token: str) -> Any:
            seen[job.id] = job.data
            if len(seen) == 2:
                both.set()
            return "ok"

        worker = Worker(key_prefix, process, {"connection": connection})
        try:
            await asyncio.wait_for(both.wait(), 10)
        finally:
            await asyncio.wait_for(worker.close(), 10)
        assert seen == {
            f"{run}_A": {"runId": run, "blueprintId": "wire", "nodeId": "A"},
            f"{run}_R": {"runId": run, "blueprintId": "wire", "nodeId": "R"},
        }
    finally:
        await queue.close()


# ----------------------------------------------------------------------------- idempotency
async def _snapshot(d: Driver) -> Any:
    state = await d.redis.hgetall(keys.state_key(d.run))  # type: ignore[misc]
    qk = keys.queue_keys(d.queue)
    return (
        await d.fields(),
        state,
        await d.wait(),
        await d.redis.xlen(qk["events"]),
        await d.redis.get(qk["id"]),
    )


async def test_a_replayed_commit_changes_nothing(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    d = Driver(store, redis_client, bp(["A", "B"], ["A>B"]), f"{key_prefix}-run", key_prefix)
    await d.start([("input", '"x"')])
    writes: list[tuple[str, str | None]] = [("_outputs.A", '"a"'), ("input", None)]
    first = await d.complete("A", writes=writes, inputs=[(1, "_inputs.B", '"a"', False)])
    assert (first.code, first.enqueued, first.status) == (ScriptCode.STORED, 1, "running")
    before = await _snapshot(d)
    again = await d.complete("A", iteration=0, writes=[("_outputs.A", '"other"')])
    assert (again.code, again.enqueued, again.status) == (ScriptCode.ALREADY_PRESENT, 0, "running")
    assert await _snapshot(d) == before
    stale = await d.fail("A")  # node A is completed: failing its old execution is a replay too
    assert stale.code == ScriptCode.ALREADY_PRESENT
    assert await _snapshot(d) == before


# ---------------------------------------------------------------------------- concurrency
async def test_fifty_concurrent_arrivals_enqueue_an_all_join_once(
    store: CoordinationStore, redis_client: Redis, redis_settings: RedisSettings, key_prefix: str
) -> None:
    preds = [f"P{k}" for k in range(50)]
    d = Driver(
        store, redis_client, bp([*preds, "J"], [f"{p}>J" for p in preds]), f"{key_prefix}-run", key_prefix
    )
    assert (await d.start()).enqueued == 50
    # The commits come from a store that has not read the graph yet (a worker that just started).
    kind = "python"
    if isinstance(store, RedisCoordinationStore):
        kind = "lua" if store.scripts.functions else "lua-scripts"
    other = redis_settings.client()
    try:
        fresh = make_store(kind, other, key_prefix)
        results = await asyncio.gather(
            *(fresh.complete_node(NodeCommit(d.run, d.hash, k, 0)) for k in range(50))
        )
    finally:
        await other.aclose()
    assert all(r.code == ScriptCode.STORED for r in results)
    assert sum(r.enqueued for r in results) == 1
    j = d.index("J")
    assert (await d.statuses())[j] == 1
    assert (await d.wait()).count(keys.job_id(d.run, "J")) == 1
    fields = await d.fields()
    assert fields["out"] == "1" and fields["st"] == "running" and fields["w:50"] == "2"


async def test_an_any_join_fires_once_and_later_arrivals_are_no_ops(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    blueprint = bp(
        ["A", "B", "C", {"id": "J", "uses": "x", "config": {"joinStrategy": "any"}}], ["A>J", "B>J", "C>J"]
    )
    d = Driver(store, redis_client, blueprint, f"{key_prefix}-run", key_prefix)
    await d.start()
    results = await asyncio.gather(*(store.complete_node(NodeCommit(d.run, d.hash, k, 0)) for k in range(3)))
    assert [r.code for r in results] == [ScriptCode.STORED] * 3
    assert sum(r.enqueued for r in results) == 1
    assert (await d.wait()).count(keys.job_id(d.run, "J")) == 1
    assert (await d.complete("A", iteration=0)).code == ScriptCode.ALREADY_PRESENT
    done = await d.complete("J")
    assert (done.code, done.status) == (ScriptCode.STORED, "completed")


# ---------------------------------------------------------------------------- run statuses
async def test_exclusive_branches_converge_and_the_run_completes_once(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    blueprint = bp(
        ["R", "left", "right", "J"],
        [
            {"source": "R", "target": "left", "action": "l"},
            {"source": "R", "target": "right", "action": "r"},
            "left>J",
            "right>J",
        ],
    )
    d = Driver(store, redis_client, blueprint, f"{key_prefix}-run", key_prefix)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.status_channel(d.run))
    try:
        await d.start([("k", "1")], state_ttl_seconds=100)
        routed = await d.complete("R", [d.edge("R", "left")])
        assert routed.enqueued == 1
        statuses = await d.statuses()
        assert statuses[d.index("left")] == 1 and statuses[d.index("right")] == 4
        joined = await d.complete("left")
        assert (joined.enqueued, joined.status) == (1, "running")
        assert (await d.statuses())[d.index("J")] == 1
        done = await d.complete("J", writes=[("_outputs.J", '"done"')])
        assert (done.code, done.enqueued, done.status) == (ScriptCode.STORED, 0, "completed")
        status = await d.status_json()
        assert status["status"] == "completed"
        assert status["payload"]["context"]["_outputs.J"] == "done"
        assert status["payload"]["errors"] == [] and "reason" not in status
        messages = await drain(pubsub)
        assert len(messages) == 1 and json.loads(messages[0]) == status
        for key in (keys.state_key(d.run), keys.run_key(d.run), keys.status_key(d.run)):
            assert 0 < await redis_client.ttl(key) <= 100
        assert (await d.complete("J")).code == ScriptCode.NOT_RUNNING
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_a_failed_node_fails_the_run_once_nothing_is_outstanding(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    d = Driver(store, redis_client, bp(["A", "B", "C"], ["A>C", "B>C"]), f"{key_prefix}-run", key_prefix)
    await d.start()
    failed = await d.fail("A", "boom")
    # B is still outstanding: the run goes on until it settles.
    assert (failed.code, failed.status) == (ScriptCode.STORED, "running")
    assert await redis_client.exists(keys.status_key(d.run)) == 0
    last = await d.complete("B")
    assert (last.code, last.enqueued, last.status) == (ScriptCode.STORED, 0, "failed")
    status = await d.status_json()
    assert status["status"] == "failed" and status["reason"] == "boom"
    assert status["payload"]["errors"] == [{"nodeId": "A", "message": "boom"}]
    statuses = await d.statuses()
    assert statuses == {0: 5, 1: 3, 2: 0}
    assert keys.job_id(d.run, "C") not in await d.wait()
    assert (await d.complete("B", iteration=0)).code == ScriptCode.NOT_RUNNING
    assert (await d.fail("A")).code == ScriptCode.NOT_RUNNING


async def test_cancel_publishes_once_and_stops_commits(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    d = Driver(store, redis_client, bp(["A", "B"], ["A>B"]), f"{key_prefix}-run", key_prefix)
    await d.start()
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.status_channel(d.run), keys.CANCEL_CHANNEL)
    try:
        result = await d.cancel("user asked")
        assert (result.code, result.status) == (ScriptCode.STORED, "cancelled")
        status = await d.status_json()
        assert status["status"] == "cancelled" and status["reason"] == "user asked"
        messages = await drain(pubsub)
        assert messages.count(d.run) == 1  # the cancel channel
        assert [m for m in messages if m != d.run] == [json.dumps(status, separators=(",", ":"))]
        assert (await d.complete("A")).code == ScriptCode.NOT_RUNNING
        again = await d.cancel()
        assert (again.code, again.status) == (ScriptCode.ALREADY_PRESENT, "cancelled")
        assert await drain(pubsub, 0.1) == []
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    unknown = await d.store.cancel_run(f"{key_prefix}-nope", "x")
    assert (unknown.code, unknown.status) == (ScriptCode.UNKNOWN_RUN, None)


async def test_await_then_resume_enqueues_the_next_iteration_once(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    d = Driver(store, redis_client, bp(["A", "W", "B"], ["A>W", "W>B"]), f"{key_prefix}-run", key_prefix)
    await d.start()
    await d.complete("A")
    waiting = await d.complete("W", mode="await", awaiting={"reason": "approval", "prompt": "ok?"})
    assert (waiting.code, waiting.status) == (ScriptCode.STORED, "awaiting")
    assert (await d.status_json())["status"] == "awaiting"
    state = await redis_client.hgetall(keys.state_key(d.run))  # type: ignore[misc]
    assert json.loads(state[b"_awaitingNodeIds"]) == ["W"]
    assert json.loads(state[b"_awaitingDetails"]) == {"W": {"reason": "approval", "prompt": "ok?"}}
    code, node, job = await d.resume("W", {"output": 42})
    assert (code, node, job) == (ScriptCode.STORED, "W", f"{d.run}_W_1")
    w = d.index("W")
    fields = await d.fields()
    assert fields[f"rs:{w}"] == '{"output":42}' and fields[f"s:{w}"] == "1" and fields["st"] == "running"
    assert fields["aw"] == "0" and fields["out"] == "1"
    assert await redis_client.exists(keys.status_key(d.run)) == 0
    assert job in await d.wait()
    assert b"_awaitingNodeIds" not in await redis_client.hgetall(keys.state_key(d.run))  # type: ignore[misc]
    assert (await d.resume("W", {}))[0] == ScriptCode.NOT_AWAITING
    assert (await d.resume(None, {}))[0] == ScriptCode.NOT_AWAITING
    assert (await d.complete("W", iteration=0)).code == ScriptCode.ALREADY_PRESENT
    resumed = await d.complete("W")
    assert (resumed.code, resumed.enqueued) == (ScriptCode.STORED, 1)


@pytest.mark.parametrize("ending", ["completed", "kept", "awaiting", "cancelled"])
async def test_a_run_hash_is_a_hash_table_while_the_run_runs_and_compact_once_it_stops(
    store: CoordinationStore, redis_client: Redis, key_prefix: str, ending: str
) -> None:
    """startRun's filler field "hx" keeps the run hash a hash table while the run runs (an absent
    field costs a lookup, not a scan of a listpack); once the run's status is published the
    filler is gone and the hash is a listpack again, with every other field and the run's TTL
    ("kept": state_ttl_seconds 0, no TTL; an awaiting run has none either)."""
    d = Driver(store, redis_client, bp(["A", "W", "B"], ["A>W", "W>B"]), f"{key_prefix}-run", key_prefix)
    await d.start(**({"state_ttl_seconds": 0} if ending == "kept" else {}))
    run_key = keys.run_key(d.run)
    assert await redis_client.object("ENCODING", run_key) == b"hashtable"
    assert (await d.fields())["hx"] == "-" * 65
    await d.complete("A")
    before = await d.fields()
    if ending == "awaiting":
        result = await d.complete("W", mode="await")
    elif ending == "cancelled":
        result = await d.cancel()
    else:
        await d.complete("W")
        result = await d.complete("B")
    assert result.status == ("completed" if ending == "kept" else ending)
    assert await redis_client.object("ENCODING", run_key) == b"listpack"
    after = await d.fields()
    assert "hx" not in after and after["st"] == result.status
    kept = {k: v for k, v in before.items() if k != "hx" and not k.endswith(":1") and not k.endswith(":2")}
    for changed in ("st", "lu", "out", "aw"):
        del kept[changed]
    assert {k: after[k] for k in kept} == kept  # the start fields and A's, as they were
    assert after[f"k:{d.index('A')}"] == before[f"k:{d.index('A')}"]
    ttl = await redis_client.ttl(run_key)
    if ending in ("kept", "awaiting"):
        assert ttl == -1
    else:
        assert 86_000 < ttl <= 86_400


async def test_a_run_hash_too_big_for_a_listpack_loses_only_its_filler(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """A run hash past 128 fields (here a 50-node chain's) is left a hash table when the run
    ends; the filler goes and the hash gets the run's TTL all the same."""
    names = [f"N{k}" for k in range(50)]
    chain = bp(names, [f"{a}>{b}" for a, b in itertools.pairwise(names)])
    d = Driver(store, redis_client, chain, f"{key_prefix}-run", key_prefix)
    await d.start()
    for name in names:
        result = await d.complete(name)
    assert result.status == "completed"
    run_key = keys.run_key(d.run)
    fields = await d.fields()
    assert len(fields) > 128 and "hx" not in fields
    assert await redis_client.object("ENCODING", run_key) == b"hashtable"
    assert 86_000 < await redis_client.ttl(run_key) <= 86_400


@pytest.mark.parametrize(("nodes", "encoding"), [(42, "listpack"), (43, "hashtable")])
async def test_a_big_graphs_state_is_a_hash_table_from_the_start(
    store: CoordinationStore, redis_client: Redis, key_prefix: str, nodes: int, encoding: str
) -> None:
    """A run of a graph of 43 nodes or more (three state fields a node: more than a listpack
    holds) gets a hash-table state when it starts, so its writes and reads never scan a long
    listpack; the field that converted it is gone at once, and the state holds what it would
    otherwise. A smaller graph's state stays a compact listpack."""
    names = [f"N{k}" for k in range(nodes)]
    chain = bp(names, [f"{a}>{b}" for a, b in itertools.pairwise(names)])
    d = Driver(store, redis_client, chain, f"{key_prefix}-run", key_prefix)
    await d.start([("input", "1")])
    state_key = keys.state_key(d.run)
    assert (await redis_client.object("ENCODING", state_key)).decode() == encoding
    state = await redis_client.hgetall(state_key)  # type: ignore[misc]
    assert state == {b"input": b"1", b"blueprintId": b'"g"', b"blueprintVersion": b"null"}
    for name in names[:3]:
        await d.complete(name, writes=[(f"_outputs.{name}", f'"{name}"')])
    state = await redis_client.hgetall(state_key)  # type: ignore[misc]
    assert state[b"_outputs.N2"] == b'"N2"' and b"\0bullflow:table" not in state


async def test_a_context_key_named_like_the_state_converting_field_is_kept(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """The field that makes a big graph's state a hash table is set only when absent (HSETNX),
    so an initial context key of that name keeps its value."""
    names = [f"N{k}" for k in range(43)]
    chain = bp(names, [f"{a}>{b}" for a, b in itertools.pairwise(names)])
    d = Driver(store, redis_client, chain, f"{key_prefix}-run", key_prefix)
    await d.start([("\0bullflow:table", '"mine"')])
    state = await redis_client.hgetall(keys.state_key(d.run))  # type: ignore[misc]
    assert state[b"\0bullflow:table"] == b'"mine"'


async def test_a_run_hash_of_128_fields_besides_its_filler_is_made_compact(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """The 128-field limit counts the fields the run hash keeps, not the filler it loses: a run
    whose hash ends with exactly 128 fields (padded by hand before its last commit) is rewritten
    as a listpack."""
    blueprint = bp(["A", "B"], ["A>B"])
    probe = Driver(store, redis_client, blueprint, f"{key_prefix}-probe", key_prefix)
    await probe.start()
    await probe.complete("A")
    await probe.complete("B")
    kept = len(await probe.fields())
    d = Driver(store, redis_client, blueprint, f"{key_prefix}-run", key_prefix)
    await d.start()
    await d.complete("A")
    run_key = keys.run_key(d.run)
    await redis_client.hset(run_key, mapping={f"pad:{k}": "1" for k in range(128 - kept)})  # type: ignore[misc]
    assert (await d.complete("B")).status == "completed"
    fields = await d.fields()
    assert len(fields) == 128 and "hx" not in fields
    assert await redis_client.object("ENCODING", run_key) == b"listpack"


async def test_ready_nodes_requeues_lost_jobs_and_skips_untaken_branches(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    blueprint = bp(
        ["R", "L", "X"],
        [{"source": "R", "target": "L", "action": "l"}, {"source": "R", "target": "X", "action": "x"}],
    )
    d = Driver(store, redis_client, blueprint, f"{key_prefix}-run", key_prefix)
    await d.start()
    await d.complete("R", [d.edge("R", "L")])
    job = keys.job_id(d.run, "L")
    qk = keys.queue_keys(key_prefix)
    await redis_client.delete(keys.queue_key_prefix(key_prefix) + job)
    await redis_client.lrem(qk["wait"], 0, job)  # type: ignore[misc]
    code, nodes = await d.ready_nodes()
    assert code == ScriptCode.STORED
    assert nodes == [ReadyNode(d.index("L"), "L", 0, job, "requeued", "")]
    assert (await d.wait()).count(job) == 1
    assert await redis_client.exists(keys.queue_key_prefix(key_prefix) + job) == 1
    code, nodes = await d.ready_nodes()
    assert [n.state for n in nodes] == ["queued"]
    assert (await d.wait()).count(job) == 1
    assert (await d.statuses())[d.index("X")] == 4


# ----------------------------------------------------------------------- graphs and locks
async def test_a_run_starts_after_its_graph_was_flushed(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    blueprint = bp(["A", "B"], ["A>B"], id=key_prefix)
    first = Driver(store, redis_client, blueprint, f"{key_prefix}-1", key_prefix)
    await first.start()
    graph = keys.graph_key(first.hash)
    stored = await redis_client.hgetall(graph)  # type: ignore[misc]
    await redis_client.delete(graph)
    second = Driver(store, redis_client, blueprint, f"{key_prefix}-2", key_prefix)
    assert (await second.start()).code == ScriptCode.STORED
    assert await redis_client.hgetall(graph) == stored  # type: ignore[misc]
    assert (await second.complete("A")).enqueued == 1


async def test_a_lock_is_held_by_one_token_and_extended_by_it(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    assert await store.acquire_lock(key_prefix, "a", 10_000) is True
    assert await store.acquire_lock(key_prefix, "b", 10_000) is False
    assert await redis_client.get(keys.lock_key(key_prefix)) == b"a"
    assert await store.acquire_lock(key_prefix, "a", 60_000) is True
    assert 10_000 < await redis_client.pttl(keys.lock_key(key_prefix)) <= 60_000
    await redis_client.delete(keys.lock_key(key_prefix))
    assert await store.acquire_lock(key_prefix, "b", 1_000) is True


# ------------------------------------------------------------------- both stores, same state
def loop_blueprint() -> dict[str, Any]:
    return bp(
        [
            "init",
            "body",
            {
                "id": "ctrl",
                "uses": "loop-controller",
                "params": {"condition": "i < 2"},
                "config": {"joinStrategy": "any"},
            },
            "end",
        ],
        [
            {"source": "ctrl", "target": "end", "action": "break"},
            "body>ctrl",
            {"source": "ctrl", "target": "body", "action": "continue"},
            "init>ctrl",
        ],
        id="loop",
    )


def scatter_blueprint() -> dict[str, Any]:
    return bp(
        ["P", {"id": "S", "uses": "batch-scatter"}, {"id": "G", "uses": "batch-gather"}, "V"],
        ["P>S", "S>G", "G>V"],
        id="batch",
    )


def worker(name: str, uses: str = "x") -> list[str]:
    return [name, json.dumps({"id": name, "uses": uses, "params": {"item/path": "é"}})]


async def linear(d: Driver) -> None:
    # Fields cjson.decode refuses appear in the status as strings; those it accepts, as they are.
    context = [("input", '"a/b"'), ("empty", ""), ("ünï", '{"x":[1,2]}'), ("corrupt", "not json {")]
    context += [("hex", "0x1F"), ("nan", "nan"), ("nul", "1\x00x"), ("ctrl", '"\x01"'), ("lone", '"\\ud800"')]
    await d.start(context, state_ttl_seconds=500)
    await d.complete(
        "A",
        writes=[("_outputs.A", '"a"'), ("A", '"a"'), ("input", None), ("blank", "")],
        inputs=[(1, "_inputs.B", '"a"', False)],
    )
    await d.complete("B", writes=[("_outputs.B", "[1,2]")], inputs=[(2, "_inputs.C", "3", True)])
    await d.complete("C", writes=[("_outputs.C", '"c\\n\\u0001/"')])
    await d.complete("C", iteration=0)


async def big_values(d: Driver) -> None:
    # Values over 64 bytes (or over 128 fields) make Redis keep the state as a hash table.
    await d.start([("deep", "[" * 1001 + "]" * 1001), ("long", json.dumps("x" * 100)), ("bad", "{")])
    await d.complete("A", writes=[("_outputs.A", json.dumps(["y" * 70]))])
    await d.complete("B", writes=[(f"k{k}", str(k)) for k in range(130)])
    await d.complete("C")


async def loop(d: Driver) -> None:
    await d.start([("i", "0")])
    await d.complete("init")
    for i in (1, 2):
        await d.complete("ctrl", [d.edge("ctrl", "body")], writes=[("i", str(i))])
        await d.complete("body", writes=[("_outputs.body", str(i))])
    await d.complete("ctrl", [d.edge("ctrl", "end")])
    await d.complete("end")


async def loop_guard(d: Driver) -> None:
    await d.start(max_waves=5)
    await d.complete("init")
    for _ in range(3):
        await d.complete("ctrl", [d.edge("ctrl", "body")])
        await d.complete("body")


async def scatter(d: Driver) -> None:
    await d.start()
    await d.complete("P")
    dynamic = {"gather": d.index("G"), "workers": [worker("w0"), worker("w1/é")]}
    await d.complete("S", dynamic=dynamic, writes=[("_outputs.S", '{"gatherNodeId":"G"}')])
    await d.complete(4, writes=[("_outputs.w0", "0")])
    await d.ready_nodes()
    await d.complete(5)
    await d.complete("G")
    await d.complete("V")


async def scatter_continuation(d: Driver) -> None:
    await d.start()
    await d.complete("P")
    dynamic = {
        "gather": d.index("G"),
        "workers": [worker("w0")],
        "continuation": worker("more", "batch-scatter"),
    }
    await d.complete("S", dynamic=dynamic)
    await d.complete(4)
    await d.complete(5, dynamic={"gather": d.index("G"), "workers": []})
    await d.complete("G")
    await d.complete("V")


async def fallback(d: Driver) -> None:
    await d.start()
    await d.complete("S")
    await d.complete("F", mode="fallback", errors=[{"nodeId": "F", "message": "primary failed"}])
    await d.complete("FB", writes=[("_outputs.FB", '"fb"')])
    await d.complete("E")


async def await_sleep_errors(d: Driver) -> None:
    await d.start()
    await d.complete("A")
    details = {
        "reason": "approval",
        "zeta": [1, 2.5, None],
        "alpha": {"nested/key": "v", "n": 1e20, "m": 123456789012345},
        "b": True,
    }
    await d.complete("W", mode="await", awaiting=details)
    await d.resume("W", {"output": "yes", "action": "go"})
    await d.complete("W")
    # Other delayed jobs due in every millisecond around Z's: Z's score goes one past theirs.
    now = int(time.time() * 1000)
    others = {f"other{t}": t * 0x1000 + 5 for t in range(now - 1000, now + 5000)}
    await d.redis.zadd(keys.queue_keys(d.queue)["delayed"], others)
    await d.complete("Z", mode="sleep", sleep_ms=1500)
    await d.complete("Z", errors=[{"nodeId": "Z", "message": 'slept "badly"'}])
    await d.complete("B")


async def two_waits(d: Driver) -> None:
    await d.start()
    await d.complete("W1", mode="await")
    await d.complete("W2", mode="await", awaiting={"k": "v"})
    await d.resume("", {"output": 1})
    await d.resume("W2", {})
    await d.resume("W2", {})
    await d.complete("W1")
    await d.complete("W2")


async def fail_then_settle(d: Driver) -> None:
    await d.start()
    await d.fail("A", "boom / ü")
    await d.complete("B")
    await d.complete("B", iteration=0)


async def cancel(d: Driver) -> None:
    await d.start([("x", "1")])
    await d.complete("A")
    await d.cancel("stop \u2603")
    await d.cancel("again")
    await d.complete("B")
    await d.ready_nodes()


async def adopt(d: Driver) -> None:
    await d.redis.hset(keys.state_key(d.run), mapping={"blueprintId": '"mine"', "c": "1"})  # type: ignore[misc]
    await d.start([("ignored", "1")], adopt=True)
    await d.start()
    await d.complete("A")
    await d.ready_nodes()


async def queue_states(d: Driver) -> None:
    qk = keys.queue_keys(d.queue)
    base = keys.queue_key_prefix(d.queue)
    b, c = keys.job_id(d.run, "B"), keys.job_id(d.run, "C")
    await d.redis.hset(qk["meta"], mapping={"concurrency": "1", "opts.maxLenEvents": "500"})  # type: ignore[misc]
    await d.redis.lpush(qk["active"], "someone-else")  # type: ignore[misc]
    await d.start()  # the queue is at its global concurrency: no marker
    await d.redis.hset(qk["meta"], "paused", "1")  # type: ignore[misc]
    await d.redis.hset(base + c, "name", "already there")  # type: ignore[misc]
    await d.complete("A")  # B waits (paused: no marker), C's job id exists: "duplicated"
    # bullmq finished B's job without a commit, and gave up on C's.
    await d.redis.zadd(qk["completed"], {b: 1})
    await d.redis.zadd(qk["failed"], {c: 1})
    await d.redis.hset(base + c, "failedReason", "gave up")  # type: ignore[misc]
    await d.ready_nodes()
    await d.redis.hdel(qk["meta"], "paused", "concurrency")  # type: ignore[misc]
    await d.redis.delete(base + b)
    await d.ready_nodes()
    await d.fail("C", "gave up")
    await d.complete("B")


SCENARIOS: dict[str, tuple[dict[str, Any], Callable[[Driver], Awaitable[None]]]] = {
    "linear": (bp(["A", "B", "C"], ["A>B", "B>C"], id="linear"), linear),
    "big values": (bp(["A", "B", "C"], ["A>B", "B>C"], id="big"), big_values),
    "loop": (loop_blueprint(), loop),
    "loop guard": (loop_blueprint(), loop_guard),
    "scatter": (scatter_blueprint(), scatter),
    "scatter continuation": (scatter_blueprint(), scatter_continuation),
    "fallback": (
        bp(["S", {"id": "F", "uses": "x", "config": {"fallback": "FB"}}, "FB", "E"], ["S>F", "F>E"], id="fb"),
        fallback,
    ),
    "await sleep errors": (bp(["A", "W", "Z", "B"], ["A>W", "W>Z", "Z>B"], id="hitl"), await_sleep_errors),
    "two waits": (bp(["W1", "W2", "J"], ["W1>J", "W2>J"], id="waits"), two_waits),
    "fail": (bp(["A", "B", "C"], ["A>C", "B>C"], id="fail"), fail_then_settle),
    "cancel": (bp(["A", "B"], ["A>B"], id="cancel"), cancel),
    "adopt": (bp(["A", "B"], ["A>B"], id="adopt"), adopt),
    "queue states": (bp(["A", "B", "C"], ["A>B", "A>C"], id="queue"), queue_states),
}

_TIMESTAMP = re.compile(rb"\b1[0-9]{12}\b")


async def hashtable(redis: Redis, key: str) -> bool:
    return bool(await redis.object("ENCODING", key) == b"hashtable")


def canonical_status(raw: bytes) -> bytes:
    """The status JSON with its context's members sorted: Redis lists the fields of a hash it
    keeps as a hash table in an order no client can predict (see the python_coordination
    docstring), so there the stores agree on the members, not on their order."""
    status = json.loads(raw)
    status["payload"]["serializedContext"] = json.loads(status["payload"]["serializedContext"])
    return b"<members> " + json.dumps(status, sort_keys=True).encode()


async def dump(redis: Redis, run: str, queue: str) -> dict[str, Any]:
    """Every key of a run and of its queue, with the run id and the queue name replaced by
    placeholders, millisecond timestamps by "<ms>", and what derives from a job's timestamp (its
    delayed score, the marker, the "delayed" event's time) as offsets from that timestamp."""
    base = keys.queue_key_prefix(queue)

    async def job_time(job_id: bytes) -> int:
        job = await redis.hgetall(base + text(job_id))  # type: ignore[misc]
        return int(job[b"timestamp"]) + int(job[b"delay"])

    def norm(value: Any) -> Any:
        if isinstance(value, bytes):
            value = value.replace(run.encode(), b"<run>").replace(queue.encode(), b"<queue>")
            return _TIMESTAMP.sub(b"<ms>", value)
        if isinstance(value, dict):
            return {norm(k): norm(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        return value

    names = {k async for k in redis.scan_iter(match=f"*{run}*")}
    names |= {k async for k in redis.scan_iter(match=f"{base}*")}
    delayed = await redis.zrange(base + "delayed", 0, 0, withscores=True)
    out: dict[Any, Any] = {}
    for name in names:
        kind = text(await redis.type(name))
        value: Any
        if kind == "hash":
            value = await redis.hgetall(name)  # type: ignore[misc]
        elif kind == "list":
            value = await redis.lrange(name, 0, -1)  # type: ignore[misc]
        elif kind == "zset":
            value = await redis.zrange(name, 0, -1, withscores=True)
            if text(name) == base + "delayed":
                ours = [
                    (m, score - await job_time(m) * 0x1000)
                    for m, score in value
                    if m.startswith(run.encode())
                ]
                value = [*ours, ("others", len(value) - len(ours))]
            elif text(name) == base + "marker":
                value = [(m, score * 0x1000 - delayed[0][1] if m == b"1" else score) for m, score in value]
        elif kind == "stream":
            value = [fields for _, fields in await redis.xrange(name)]
            for fields in value:
                if fields.get(b"event") == b"delayed":
                    fields[b"delay"] = int(fields[b"delay"]) - await job_time(fields[b"jobId"])
        else:
            value = await redis.get(name)
            if text(name) == keys.status_key(run) and await hashtable(redis, keys.state_key(run)):
                value = canonical_status(value)
        ttl = await redis.ttl(name)
        out[norm(name)] = (kind, norm(value), "ttl" if ttl > 0 else ttl)
    return out


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_both_stores_leave_identical_state(redis_client: Redis, key_prefix: str, scenario: str) -> None:
    """The scenario runs on each store (its own run id and queue): the Lua as functions, as
    scripts, and the Python twin; after every call, and at the end, all leave the same keys with
    the same values, and every call returns the same."""
    blueprint, drive = SCENARIOS[scenario]
    runs = []
    for kind in STORES:
        queue, run = f"{key_prefix}q{kind}", f"{key_prefix}r{kind}"
        d = Driver(make_store(kind, redis_client, queue), redis_client, blueprint, run, queue)
        d.dumps = []
        await drive(d)
        d.dumps.append(await dump(redis_client, run, queue))
        runs.append(d)
    lua = runs[0]
    for other in runs[1:]:
        assert [repr(x).replace(lua.run, "<run>") for x in lua.log] == [
            repr(x).replace(other.run, "<run>") for x in other.log
        ]
        assert lua.dumps is not None and other.dumps is not None
        for step, (expected, got) in enumerate(zip(lua.dumps, other.dumps, strict=True)):
            assert expected.keys() == got.keys(), f"after call {step}"
            for key in expected:
                assert got[key] == expected[key], f"after call {step}: {key!r}"


async def test_a_status_stays_json_whatever_the_state_holds(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """Fields that are not JSON text (even ones cjson.decode accepts: 0x1F, nan, +1, 01, 1.,
    raw control characters, nesting past 512) appear in the status as JSON strings."""
    d = Driver(store, redis_client, bp(["A"], []), f"{key_prefix}-run", key_prefix)
    corrupt = ["0x1F", "nan", "inf", "+1", "01", "1.", '"\x01"', "[1,]", "{", "[" * 600 + "]" * 600, "tru"]
    valid = ['"ok"', "-0.5e+3", '[1, {"a": null}]', " true ", '"\\u00e9\\n"', "[" * 500 + "]" * 500]
    context = [(f"bad{k}", v) for k, v in enumerate(corrupt)] + [(f"good{k}", v) for k, v in enumerate(valid)]
    await d.start(context)
    await d.cancel("look")
    status = json.loads(await redis_client.get(keys.status_key(d.run)))
    ctx = status["payload"]["context"]
    assert [ctx[f"bad{k}"] for k in range(len(corrupt))] == corrupt
    assert [ctx[f"good{k}"] for k in range(len(valid))] == [json.loads(v) for v in valid]


async def test_status_field_names_are_json_strings_as_cjson_writes_them(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """Every store writes the names of the state's fields as cjson.encode writes them ('/', '"',
    '\\' and control characters escaped, other bytes as they are), and so a blueprint id with a
    '/' in a job's data."""
    odd = ['a/b"c\\d\x01\x7fé', "x/y", 'q"', "plain"]
    expected = ['"a\\/b\\"c\\\\d\\u0001\\u007fé"', '"x\\/y"', '"q\\""', '"plain"']
    d = Driver(store, redis_client, bp(["A"], [], id="blue/print"), f"{key_prefix}-run", key_prefix)
    await d.start([(name, "2") for name in odd])
    data = await redis_client.hget(keys.queue_key_prefix(key_prefix) + keys.job_id(d.run, "A"), "data")
    assert data is not None and b'"blueprintId":"blue\\/print","nodeId":"A"' in data
    await d.cancel("look")
    raw = (await redis_client.get(keys.status_key(d.run))).decode()
    for name, encoded in zip(odd, expected, strict=True):
        assert f"{encoded}:2" in raw, name
    context = json.loads(raw)["payload"]["context"]
    assert context == {"blueprintId": "blue/print", "blueprintVersion": None, **dict.fromkeys(odd, 2)}


async def test_a_wait_inside_a_batch_worker_can_be_resumed(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    d = Driver(store, redis_client, scatter_blueprint(), f"{key_prefix}-run", key_prefix)
    await d.start()
    await d.complete("P")
    await d.complete("S", dynamic={"gather": 2, "workers": [worker("w0", "wait")]})
    graph = d.compiled.content_hash
    assert (await store.complete_node(NodeCommit(d.run, graph, 4, 0, mode="await"))).status == "awaiting"
    code, node, job = await store.resume_node(d.run, graph, "w0", {"output": 5})
    assert (code, node) == (ScriptCode.STORED, "w0")
    assert job == keys.job_id(d.run, "w0", 1)


async def test_a_committer_that_takes_the_next_job_does_not_wake_blocked_workers_for_it(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """``fetching``: when the commit readies one node and nothing else waits, the marker that wakes
    blocked workers is left alone (the committer takes the job in the same round trip); with other
    jobs waiting, or several nodes made ready, it is set as usual."""
    marker = keys.queue_keys(key_prefix)["marker"]
    wait = keys.queue_keys(key_prefix)["wait"]
    d = Driver(
        store, redis_client, bp(["A", "B", "C", "D"], ["A>B", "B>C", "B>D"]), f"{key_prefix}-run", key_prefix
    )
    await d.start()
    await redis_client.delete(marker, wait)  # A's job was taken
    await d.complete("A", fetching=True)
    assert await redis_client.exists(marker) == 0
    assert await redis_client.llen(wait) == 1
    await redis_client.delete(wait)  # B's job was taken
    await d.complete("B", fetching=True)  # readies C and D: other workers are woken
    assert await redis_client.zrange(marker, 0, -1) == [b"0"]


async def test_a_server_that_refuses_dump_and_restore_keeps_the_run_hash_a_hash_table(
    redis_client: Redis, redis_settings: RedisSettings, key_prefix: str
) -> None:
    """An ACL user without RESTORE (as in ACLs that drop @dangerous) still ends its runs: the
    filler goes, the hash stays a hash table, and it gets the run's TTL by EXPIRE."""
    user, password = f"{key_prefix}-user", "secret"
    await redis_client.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all", "-restore"
    )
    limited = RedisSettings(
        **{**dataclasses.asdict(redis_settings), "username": user, "password": password}
    ).client()
    try:
        d = Driver(
            RedisCoordinationStore(limited, key_prefix),
            limited,
            bp(["A"], []),
            f"{key_prefix}-run",
            key_prefix,
        )
        await d.start()
        result = await d.complete("A")
        assert result.status == "completed"
        run_key = keys.run_key(d.run)
        assert "hx" not in await d.fields()
        assert await redis_client.object("ENCODING", run_key) == b"hashtable"
        assert 86_000 < await redis_client.ttl(run_key) <= 86_400
    finally:
        await limited.aclose()
        await redis_client.execute_command("ACL", "DELUSER", user)


async def test_runs_of_many_graphs_in_turn_each_follow_their_own_graph(
    store: CoordinationStore, redis_client: Redis, key_prefix: str
) -> None:
    """The library remembers graph metas (64) and node records (4,096) across calls: 70 graphs
    of one id and node indices, each fanning out to its own set of successors (4,300 records in
    all), started and committed in turn, then the first ones again after the others pushed
    them out; every commit readies exactly its own graph's successors."""

    def fan(g: int) -> dict[str, Any]:
        width = 55 + g % 10
        targets = [f"T{k}" for k in range(width)]
        # the same node indices in every graph, a different fan-out width
        source = {"id": "S", "uses": "x", "params": {"graph": g}}
        return bp(
            [source, *targets, *[f"U{k}" for k in range(64 - width)]], [f"S>{t}" for t in targets], id="fan"
        )

    drivers = [Driver(store, redis_client, fan(g), f"{key_prefix}-r{g}", key_prefix) for g in range(70)]
    assert len({d.hash for d in drivers}) == 70
    for g, d in enumerate(drivers):
        assert (await d.start()).enqueued == 1 + 64 - (55 + g % 10)  # S and every U
    for g, d in enumerate(drivers):
        result = await d.complete("S")
        assert result.enqueued == 55 + g % 10, f"graph {g}"
    for g, d in enumerate(drivers[:3]):
        statuses = await d.statuses()
        width = 55 + g % 10
        assert [statuses[d.index(f"T{k}")] for k in range(width)] == [1] * width
        await d.complete("T0")
        assert (await d.statuses())[d.index("T0")] == 3
