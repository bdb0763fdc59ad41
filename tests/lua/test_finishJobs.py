"""lua/finishJobs-10.lua against a real redis-server, as a black box: one job per call, then
batches of several jobs (``finish_many``).

Jobs are added with bullmq's own ``Queue`` and taken with bullmq's own ``Worker`` (not running:
``getNextJob``). Where the script claims to do what bullmq's ``moveToFinished`` (with fetchNext)
and ``moveToActive`` do for a plain job, the same scenario runs on a second queue that bullmq's
own script finishes (``Job.moveToCompleted``), and every key of the two queues is compared:
job hashes (timestamps by presence only), the completed set, the active and wait lists, locks,
the events stream (event names and fields, without ids and timestamps) and the job taken next.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from bullmq import FlowProducer, Queue, Worker  # type: ignore[import-untyped]
from redis.asyncio import Redis

from bullflow import keys
from bullflow.blueprint import load_blueprint
from bullflow.compile import compile_blueprint
from bullflow.coordination import NodeCommit, RedisCoordinationStore, RunOptions
from bullflow.job_batch import FINISH_KEYS, decode_finish_replies
from bullflow.scripts import ScriptCode, ScriptRunner
from bullflow.settings import RedisSettings

TOKEN = "worker-token"
LOCK_MS = 12_345
TIME_FIELDS = frozenset({"timestamp", "processedOn", "finishedOn"})
TIME = "<time>"
COMPLETED_A = {"event": "completed", "jobId": "a", "returnvalue": "null", "prev": "active"}


def text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def flat_to_dict(flat: list[Any] | dict[Any, Any]) -> dict[str, str]:
    """A hash as HGETALL returns it to a script (a flat list) or to redis-py (a dict), as text."""
    if isinstance(flat, dict):
        return {text(k): text(v) for k, v in flat.items()}
    return {text(flat[k]): text(flat[k + 1]) for k in range(0, len(flat), 2)}


def without_times(job: dict[str, str]) -> dict[str, str]:
    return {k: TIME if k in TIME_FIELDS else v for k, v in job.items()}


async def _never(job: Any, token: str) -> None:  # the worker never runs: jobs are taken by hand
    raise AssertionError("not called")


class Bench:
    """One queue: bullmq's Queue adds jobs, a bullmq Worker that is not running takes them."""

    def __init__(
        self, redis: Redis, connection: dict[str, Any], name: str, *, functions: bool = True
    ) -> None:
        self.redis = redis
        self.scripts = ScriptRunner(redis, functions=functions)  # finishJobs as a function or a script
        self.connection = connection
        self.name = name
        self.prefix = keys.queue_key_prefix(name)
        self.keys = keys.queue_keys(name)
        self.queue = Queue(name, {"connection": connection})
        self.worker = Worker(
            name, _never, {"connection": connection, "autorun": False, "lockDuration": LOCK_MS}
        )

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.worker.close(), 10)
        finally:
            await self.queue.close()

    async def add(self, job_id: str, data: Any = None, **opts: Any) -> None:
        await self.queue.add("job", {"n": job_id} if data is None else data, {"jobId": job_id, **opts})

    async def take(self, token: str = TOKEN) -> Any:
        """The next job, moved to active by bullmq's moveToActive and locked by ``token``."""
        job = await self.worker.getNextJob(token)
        assert job is not None, "bullmq's moveToActive took no job"
        return job

    async def finish(
        self,
        job_id: str,
        *,
        token: str = TOKEN,
        keep: int = -1,
        age: str = "",
        fetch: bool = True,
        lock_ms: int = LOCK_MS,
    ) -> Any:
        replies = await self.scripts.run(
            "finishJobs",
            [self.keys[name] for name in FINISH_KEYS],
            [
                self.prefix,
                lock_ms,
                keys.RUN_PREFIX,
                keys.STATE_PREFIX,
                keys.GRAPH_PREFIX,
                1,
                job_id,
                token,
                keep,
                age,
                "1" if fetch else "0",
                0,
            ],
        )
        [(code, taken, committed)] = decode_finish_replies(replies)
        assert committed is None
        return [code, taken]

    async def finish_many(
        self,
        entries: list[tuple[str, bool, list[Any]]],
        *,
        token: str = TOKEN,
        keeps: list[int] | None = None,
    ) -> Any:
        """One finishJobs call for several jobs: (job id, fetch, commit values) each; ``keeps`` the
        jobs' completed jobs to keep (default -1, all)."""
        args: list[Any] = [
            self.prefix,
            LOCK_MS,
            keys.RUN_PREFIX,
            keys.STATE_PREFIX,
            keys.GRAPH_PREFIX,
            len(entries),
        ]
        for k, (job_id, fetch, values) in enumerate(entries):
            keep = -1 if keeps is None else keeps[k]
            args += [job_id, token, keep, "", "1" if fetch else "0", len(values), *values]
        raw = await self.scripts.run("finishJobs", [self.keys[name] for name in FINISH_KEYS], args)
        return [list(reply) for reply in decode_finish_replies(raw)]

    async def job(self, job_id: str) -> dict[str, str]:
        return flat_to_dict(await self.redis.hgetall(self.prefix + job_id))  # type: ignore[misc]

    async def ids(self, name: str) -> list[str]:
        """The job ids in the queue's list or sorted set ``name``, in order."""
        key = self.keys[name]
        if name in ("wait", "active"):
            return [text(v) for v in await self.redis.lrange(key, 0, -1)]  # type: ignore[misc]
        return [text(v) for v in await self.redis.zrange(key, 0, -1)]

    async def events(self) -> list[dict[str, str]]:
        return [
            {text(k): text(v) for k, v in fields.items()}
            for _, fields in await self.redis.xrange(self.keys["events"])
        ]

    async def plant_completed(self, job_id: str, seconds_ago: float, **fields: str) -> None:
        """A job completed ``seconds_ago`` (hash, logs and completed-set entry written by hand)."""
        at = int((time.time() - seconds_ago) * 1000)
        key = self.prefix + job_id
        await self.redis.hset(  # type: ignore[misc]
            key, mapping={"name": "job", "data": "{}", "returnvalue": "null", "finishedOn": at, **fields}
        )
        await self.redis.rpush(key + ":logs", "a log line")  # type: ignore[misc]
        await self.redis.zadd(self.keys["completed"], {job_id: at})

    async def dump(self, *, exact: bool = True) -> dict[str, Any]:
        """Every key of the queue (name without the queue prefix) and its value; a string with
        whether it has a TTL. Not ``exact``: timestamps by presence only (job hash times,
        sorted-set scores, stream ids, the delay timestamp of "delayed" events), for comparing
        two queues."""
        out: dict[str, Any] = {}
        async for raw in self.redis.scan_iter(match=self.prefix + "*", count=1000):
            key = text(raw)
            name = key.removeprefix(self.prefix)
            kind = text(await self.redis.type(key))
            value: Any
            if kind == "string":
                ttl = await self.redis.pttl(key)
                value = (text(await self.redis.get(key)), ttl > 0)
            elif kind == "hash":
                value = flat_to_dict(await self.redis.hgetall(key))  # type: ignore[misc]
                if not exact:
                    value = without_times(value)
            elif kind == "list":
                value = [text(v) for v in await self.redis.lrange(key, 0, -1)]  # type: ignore[misc]
            elif kind == "set":
                value = sorted(text(v) for v in await self.redis.smembers(key))  # type: ignore[misc]
            elif kind == "zset":
                pairs = await self.redis.zrange(key, 0, -1, withscores=True)
                value = [(text(m), s) for m, s in pairs] if exact else [text(m) for m, _ in pairs]
            elif kind == "stream":
                entries = [
                    (text(i), {text(k): text(v) for k, v in f.items()})
                    for i, f in await self.redis.xrange(key)
                ]
                if exact:
                    value = entries
                else:
                    value = [
                        {k: TIME if (f.get("event"), k) == ("delayed", "delay") else v for k, v in f.items()}
                        for _, f in entries
                    ]
            else:
                raise AssertionError(f"unexpected type {kind} of {key}")
            out[name] = value
        return out


@pytest.fixture
def connection(redis_settings: RedisSettings) -> dict[str, Any]:
    return {"host": redis_settings.host, "port": redis_settings.port, "socket_timeout": None}


@pytest.fixture(params=["function", "script"])
async def bench(
    request: pytest.FixtureRequest, redis_client: Redis, connection: dict[str, Any], key_prefix: str
) -> AsyncIterator[Bench]:
    """A queue whose finishJobs calls go to the library's function (FCALL) or to the script
    (EVALSHA, as on a server without functions)."""
    b = Bench(redis_client, connection, key_prefix, functions=request.param == "function")
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def pair(
    redis_client: Redis, connection: dict[str, Any], key_prefix: str
) -> AsyncIterator[tuple[Bench, Bench]]:
    """Two queues: the first is finished with finishJobs, the second with bullmq's moveToFinished."""
    fast = Bench(redis_client, connection, key_prefix + "f")
    try:
        ref = Bench(redis_client, connection, key_prefix + "b")
        try:
            yield fast, ref
        finally:
            await ref.close()
    finally:
        await fast.close()


Setup = Callable[[Bench], Awaitable[Any]]


async def run_both(
    pair: tuple[Bench, Bench], setup: Setup, *, keep: int = -1, age: str = "", fetch: bool = True
) -> tuple[Any, Any]:
    """``setup`` on both queues (it returns the active job to finish); then finishJobs on the
    first, bullmq's moveToFinished on the second. Returns finishJobs's reply and bullmq's
    [next job data, next job id, ...] (or None)."""
    fast, ref = pair
    job_fast = await setup(fast)
    job_ref = await setup(ref)
    assert job_fast.id == job_ref.id
    reply = await fast.finish(job_fast.id, keep=keep, age=age, fetch=fetch)
    ref_next = await job_ref.moveToCompleted(None, TOKEN, fetchNext=fetch)
    return reply, ref_next


async def assert_same_as_bullmq(pair: tuple[Bench, Bench], reply: Any, ref_next: Any) -> None:
    """The queue finishJobs finished holds what bullmq's moveToFinished left in the other one,
    and the same next job was taken. The events stream is compared last, so that a difference
    there does not hide one elsewhere."""
    fast, ref = pair
    fast_keys, ref_keys = await fast.dump(exact=False), await ref.dump(exact=False)
    fast_events, ref_events = fast_keys.pop("events", []), ref_keys.pop("events", [])
    assert fast_keys == ref_keys
    ref_taken = ref_next[1] if ref_next and ref_next[0] else None
    if ref_taken is None:
        assert reply[1] is None
    else:
        assert reply[1] is not None, f"bullmq took {ref_taken}, finishJobs took nothing"
        assert (text(reply[1][1]), without_times(flat_to_dict(reply[1][0]))) == (
            ref_taken,
            without_times(ref_next[0]),
        )
    assert fast_events == ref_events


async def assert_locked(bench: Bench, job_id: str, token: str = TOKEN, lock_ms: int = LOCK_MS) -> None:
    lock = bench.prefix + job_id + ":lock"
    assert text(await bench.redis.get(lock)) == token
    assert lock_ms - 5_000 < await bench.redis.pttl(lock) <= lock_ms


# ------------------------------------------------------------------------------ completing
async def test_completes_a_plain_job_when_no_job_is_waiting(pair: tuple[Bench, Bench]) -> None:
    async def setup(b: Bench) -> Any:
        await b.add("a")
        return await b.take()

    reply, ref_next = await run_both(pair, setup)
    fast = pair[0]
    assert reply == [ScriptCode.STORED, None]
    job = await fast.job("a")
    assert (job["returnvalue"], job["atm"], job["ats"]) == ("null", "1", "1")
    assert int(job["finishedOn"]) >= int(job["processedOn"])
    assert await fast.ids("completed") == ["a"]
    assert await fast.redis.exists(fast.prefix + "a:lock") == 0
    assert await fast.ids("active") == []
    assert (await fast.events())[-2:] == [COMPLETED_A, {"event": "drained"}]  # nothing left: drained
    await assert_same_as_bullmq(pair, reply, ref_next)


@pytest.mark.parametrize("lifo", [False, True], ids=["fifo", "lifo"])
async def test_takes_the_next_waiting_job(pair: tuple[Bench, Bench], lifo: bool) -> None:
    async def setup(b: Bench) -> Any:
        await b.add("a")
        await b.add("b")
        job = await b.take()
        await b.add("c", lifo=lifo)
        await b.redis.sadd(b.keys["stalled"], "a")  # type: ignore[misc]
        return job

    reply, ref_next = await run_both(pair, setup)
    fast = pair[0]
    taken = "c" if lifo else "b"
    code, (flat, job_id, *read) = reply
    assert (code, text(job_id), read) == (ScriptCode.STORED, taken, [None, None, None, None])
    job = await fast.job(taken)
    assert flat_to_dict(flat) == job
    assert job["ats"] == "1" and "processedOn" in job
    assert await fast.ids("active") == [taken]
    assert await fast.ids("wait") == ["c" if not lifo else "b"]
    await assert_locked(fast, taken)
    assert await fast.redis.smembers(fast.keys["stalled"]) == set()  # type: ignore[misc]
    assert await fast.ids("marker") == ["0"]
    assert (await fast.events())[-2:] == [
        COMPLETED_A,
        {"event": "active", "jobId": taken, "prev": "waiting"},
    ]
    await assert_same_as_bullmq(pair, reply, ref_next)


async def test_the_next_job_is_locked_for_the_given_duration(bench: Bench) -> None:
    await bench.add("a")
    await bench.add("b")
    await bench.take()
    reply = await bench.finish("a", lock_ms=60_000)
    assert text(reply[1][1]) == "b"
    await assert_locked(bench, "b", lock_ms=60_000)


# removeOnComplete as bullmq takes it, and as finishJobs's ARGV[5], ARGV[6]; the completed set after
# the call (o1 finished 2 h ago, o2 30 s ago, o3 20 s ago, then a)
KEEP_CASES = [
    pytest.param(False, -1, "", ["o1", "o2", "o3", "a"], id="keep-all"),
    pytest.param(True, 0, "", ["o1", "o2", "o3"], id="remove"),
    pytest.param(0, 0, "", ["o1", "o2", "o3"], id="count-0"),
    pytest.param(2, 2, "", ["o3", "a"], id="count-2"),
    pytest.param({"count": 1}, 1, "", ["a"], id="count-1"),
    pytest.param({"count": 9}, 9, "", ["o1", "o2", "o3", "a"], id="count-9"),
    pytest.param({"age": 3600}, -1, "3600", ["o2", "o3", "a"], id="age"),
    pytest.param({"age": 25}, -1, "25", ["o3", "a"], id="age-25s"),
    pytest.param({"age": 3600, "count": 2}, 2, "3600", ["o3", "a"], id="age-and-count"),
]


@pytest.mark.parametrize(("option", "keep", "age", "completed"), KEEP_CASES)
async def test_remove_on_complete(
    pair: tuple[Bench, Bench], option: Any, keep: int, age: str, completed: list[str]
) -> None:
    async def setup(b: Bench) -> Any:
        await b.plant_completed("o1", 7200)
        await b.plant_completed("o2", 30)
        await b.plant_completed("o3", 20)
        await b.add("a", removeOnComplete=option)
        await b.add("b")
        job = await b.take()
        await b.redis.rpush(b.prefix + "a:logs", "a log line")  # type: ignore[misc]
        return job

    reply, ref_next = await run_both(pair, setup, keep=keep, age=age)
    fast = pair[0]
    assert reply[0] == ScriptCode.STORED and text(reply[1][1]) == "b"
    assert await fast.ids("completed") == completed
    for job_id in ("o1", "o2", "o3", "a"):
        kept = job_id in completed
        assert await fast.redis.exists(fast.prefix + job_id) == kept, job_id
        assert await fast.redis.exists(fast.prefix + job_id + ":logs") == kept, job_id
    assert (await fast.events())[-2]["event"] == "completed"
    await assert_same_as_bullmq(pair, reply, ref_next)


async def test_an_age_limit_reaching_a_child_job_is_left_to_bullmq(pair: tuple[Bench, Bench]) -> None:
    """bullmq's removeJobsByMaxAge also removes a flow's child (parentKey) older than the age, with
    its parent's bookkeeping; finishJobs leaves such a finish to bullmq's moveToFinished (-7, nothing
    changed), which the worker then calls -- so the queue ends as bullmq leaves it."""

    async def setup(b: Bench) -> Any:
        await b.plant_completed("child", 7200, parentKey=b.prefix + "gone-parent")
        await b.plant_completed("o1", 7200)
        await b.add("a", removeOnComplete={"age": 3600})
        await b.add("b")
        return await b.take()

    fast, ref = pair
    job_fast = await setup(fast)
    job_ref = await setup(ref)
    before = await fast.dump(exact=True)
    reply = await fast.finish(job_fast.id, keep=-1, age="3600", fetch=True)
    assert reply == [ScriptCode.USE_BULLMQ, None]
    assert await fast.dump(exact=True) == before
    # the worker's fallback: bullmq's own script, on both queues
    ref_next = await job_ref.moveToCompleted(None, TOKEN, fetchNext=True)
    fast_next = await job_fast.moveToCompleted(None, TOKEN, fetchNext=True)
    assert (await fast.dump(exact=False)) == (await ref.dump(exact=False))
    assert (fast_next[1], ref_next[1]) == ("b", "b")


# ------------------------------------------------------------------------------ the bullflow read
def _blueprint(key_prefix: str) -> dict[str, Any]:
    return {
        "id": f"{key_prefix}-bp",
        "nodes": [{"id": "A", "uses": "x"}, {"id": "B", "uses": "x"}],
        "edges": [{"source": "A", "target": "B"}],
    }


async def test_reads_the_next_jobs_run_node_and_input(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    compiled = compile_blueprint(load_blueprint(_blueprint(key_prefix)))
    store = RedisCoordinationStore(redis_client, bench.name)
    run = f"{key_prefix}-run"
    assert (await store.start_run(run, compiled, [], RunOptions())).committed
    job_a = await bench.take()
    assert job_a.id == keys.job_id(run, "A")
    a, b = compiled.index["A"], compiled.index["B"]
    commit = NodeCommit(run, compiled.content_hash, a, 0, inputs=[(b, "_inputs.B", '"hello"', True)])
    assert (await store.complete_node(commit)).enqueued == 1

    reply = await bench.finish(job_a.id)

    code, (flat, job_id, run_fields, index, node_fields, node_input) = reply
    assert (code, text(job_id)) == (ScriptCode.STORED, keys.job_id(run, "B"))
    assert json.loads(flat_to_dict(flat)["data"]) == {
        "runId": run,
        "blueprintId": f"{key_prefix}-bp",
        "nodeId": "B",
    }
    assert [text(v) for v in run_fields] == ["running", compiled.content_hash, f"{key_prefix}-bp"]
    assert index == b
    fields = [f"{name}:{b}" for name in ("s", "it", "t", "ff", "rs", "d")]
    assert node_fields == await redis_client.hmget(keys.run_key(run), fields)  # type: ignore[misc]
    assert node_fields[0] is not None and node_fields[2] is not None  # ready; input from a transform
    assert node_input == b'"hello"'
    await assert_locked(bench, job_id.decode())


# what the run hash, the graph and the state hold for the job's data
# {runId, blueprintId, nodeId: "Z", index?}; the graph maps Z to 3
READ_CASES = [
    pytest.param(True, True, 7, 7, id="data.index"),
    pytest.param(True, True, None, 3, id="graph-ix"),
    pytest.param(True, False, None, None, id="no-graph-entry"),
    pytest.param(False, False, None, None, id="no-run"),
]


@pytest.mark.parametrize(("has_run", "in_graph", "data_index", "index"), READ_CASES)
async def test_reads_the_node_by_data_index_or_the_graph(
    bench: Bench,
    redis_client: Redis,
    key_prefix: str,
    has_run: bool,
    in_graph: bool,
    data_index: int | None,
    index: int | None,
) -> None:
    run = f"{key_prefix}-run"
    graph = keys.graph_key(key_prefix)
    await redis_client.hset(graph, mapping={"meta": "{}", **({"ix:Z": 3} if in_graph else {})})  # type: ignore[misc]
    if has_run:
        await redis_client.hset(  # type: ignore[misc]
            keys.run_key(run),
            mapping={
                "st": "running",
                "g": key_prefix,
                "bp": "bp",
                "s:3": "1",
                "it:3": "4",
                "s:7": "2",
                "it:7": "5",
                "d:7": '{"id":"Z"}',
            },
        )
        await redis_client.hset(keys.state_key(run), "_inputs.Z", "[1,2]")  # type: ignore[misc]
    data: dict[str, Any] = {"runId": run, "blueprintId": "bp", "nodeId": "Z"}
    if data_index is not None:
        data["index"] = data_index
    await bench.add("a")
    await bench.add("z", data)
    await bench.take()

    code, (flat, job_id, run_fields, got_index, node_fields, node_input) = await bench.finish("a")

    assert (code, text(job_id), flat_to_dict(flat)) == (ScriptCode.STORED, "z", await bench.job("z"))
    no_run: list[bytes | None] = [None, None, None]
    assert run_fields == ([b"running", key_prefix.encode(), b"bp"] if has_run else no_run)
    assert got_index == index
    if index is None:
        assert node_fields is None
    else:
        s, it = {3: (b"1", b"4"), 7: (b"2", b"5")}[index]
        assert node_fields == [s, it, None, None, None, b'{"id":"Z"}' if index == 7 else None]
    assert node_input == (b"[1,2]" if has_run else None)


@pytest.mark.parametrize(
    "data",
    [
        "text",
        [1, 2],
        {"n": 1},
        {"runId": 5, "nodeId": "B"},
        {"runId": "r", "blueprintId": "bp"},
        {"runId": "r", "nodeId": ["B"]},
        None,
    ],
    ids=["string", "array", "object", "numeric-runId", "no-nodeId", "array-nodeId", "not-json"],
)
async def test_a_next_job_that_is_not_a_node_job_reads_nothing(bench: Bench, data: Any) -> None:
    await bench.add("a")
    await bench.add("b", {"x": 1} if data is None else data)
    if data is None:
        await bench.redis.hset(bench.prefix + "b", "data", "{not json")  # type: ignore[misc]
    await bench.take()
    reply = await bench.finish("a")
    assert reply[0] == ScriptCode.STORED
    flat, job_id, *read = reply[1]
    assert (text(job_id), flat_to_dict(flat), read) == ("b", await bench.job("b"), [None, None, None, None])


# ------------------------------------------------------------------------------ left to bullmq
async def _missing_hash(b: Bench) -> tuple[str, str]:
    return "nope", TOKEN


async def _other_token(b: Bench) -> tuple[str, str]:
    return "a", "another-token"


async def _no_lock(b: Bench) -> tuple[str, str]:
    await b.redis.delete(b.prefix + "a:lock")
    return "a", TOKEN


async def _not_active(b: Bench) -> tuple[str, str]:
    await b.redis.lrem(b.keys["active"], 0, "a")  # type: ignore[misc]
    return "a", TOKEN


def _field(name: str, value: str) -> Callable[[Bench], Awaitable[tuple[str, str]]]:
    async def mutate(b: Bench) -> tuple[str, str]:
        await b.redis.hset(b.prefix + "a", name, value)  # type: ignore[misc]
        return "a", TOKEN

    return mutate


async def _dependencies(b: Bench) -> tuple[str, str]:
    await b.redis.sadd(b.prefix + "a:dependencies", b.prefix + "child")  # type: ignore[misc]
    return "a", TOKEN


async def _failed_children(b: Bench) -> tuple[str, str]:
    """bullmq's moveToFinished refuses to complete such a job (-9, "has failed children")."""
    await b.redis.zadd(b.prefix + "a:unsuccessful", {b.prefix + "child": 1})
    return "a", TOKEN


FALLBACKS = [
    pytest.param(_missing_hash, id="job-hash-missing"),
    pytest.param(_other_token, id="lock-of-another-token"),
    pytest.param(_no_lock, id="lock-missing"),
    pytest.param(_not_active, id="not-in-active"),
    pytest.param(_field("parentKey", "bull:other:p"), id="parentKey"),
    pytest.param(_field("parent", '{"id":"p","queueKey":"bull:other"}'), id="parent"),
    pytest.param(_field("deid", "dedup"), id="deid"),
    pytest.param(_dependencies, id="dependencies"),
    pytest.param(_failed_children, id="failed-children"),
]


@pytest.mark.parametrize("mutate", FALLBACKS)
async def test_falls_back_to_bullmq_and_changes_nothing(
    bench: Bench, mutate: Callable[[Bench], Awaitable[tuple[str, str]]]
) -> None:
    await bench.add("a")
    await bench.add("b")
    await bench.take()
    job_id, token = await mutate(bench)
    before = await bench.dump()
    assert await bench.finish(job_id, token=token) == [ScriptCode.USE_BULLMQ, None]
    assert await bench.dump() == before


async def test_a_flow_child_falls_back_to_bullmq(bench: Bench) -> None:
    flow = FlowProducer({"connection": bench.connection})
    try:
        await flow.add(
            {
                "name": "parent",
                "queueName": bench.name,
                "data": {},
                "opts": {"jobId": "p"},
                "children": [{"name": "child", "queueName": bench.name, "data": {}, "opts": {"jobId": "c"}}],
            }
        )
    finally:
        await flow.close()
    await bench.add("b")
    child = await bench.take()
    assert child.id == "c" and child.parentKey == bench.prefix + "p"
    before = await bench.dump()
    assert await bench.finish("c") == [ScriptCode.USE_BULLMQ, None]
    assert await bench.dump() == before


async def test_a_deduplicated_job_falls_back_to_bullmq(bench: Bench) -> None:
    await bench.add("a", deduplication={"id": "once"})
    await bench.add("b")
    await bench.take()
    assert (await bench.job("a"))["deid"] == "once"
    before = await bench.dump()
    assert await bench.finish("a") == [ScriptCode.USE_BULLMQ, None]
    assert await bench.dump() == before


# ------------------------------------------------------------------------------ no next job
async def _waiting_b(b: Bench) -> Any:
    await b.add("a")
    await b.add("b")
    return await b.take()


async def _assert_a_completed_and_b_still_waits(pair: tuple[Bench, Bench], reply: Any, ref_next: Any) -> None:
    """a completed, no next job taken: b still waits, nothing is active, as with bullmq."""
    fast = pair[0]
    assert reply == [ScriptCode.STORED, None]
    assert (await fast.ids("completed"), await fast.ids("wait"), await fast.ids("active")) == (
        ["a"],
        ["b"],
        [],
    )
    await assert_same_as_bullmq(pair, reply, ref_next)


async def test_no_fetch_when_not_asked(pair: tuple[Bench, Bench]) -> None:
    reply, ref_next = await run_both(pair, _waiting_b, fetch=False)
    await _assert_a_completed_and_b_still_waits(pair, reply, ref_next)


async def test_no_fetch_on_a_paused_queue(pair: tuple[Bench, Bench]) -> None:
    async def setup(b: Bench) -> Any:
        job = await _waiting_b(b)
        await b.queue.pause()
        return job

    reply, ref_next = await run_both(pair, setup)
    await _assert_a_completed_and_b_still_waits(pair, reply, ref_next)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_global_concurrency(pair: tuple[Bench, Bench], concurrency: int) -> None:
    """One other job is active: at concurrency 1 nothing is taken, at 2 the next job is."""

    async def setup(b: Bench) -> Any:
        await b.add("a")
        await b.add("other")
        await b.add("b")
        job = await b.take()
        await b.take("other-token")
        await b.queue.setGlobalConcurrency(concurrency)
        return job

    reply, ref_next = await run_both(pair, setup)
    fast = pair[0]
    assert reply[0] == ScriptCode.STORED
    if concurrency == 1:
        assert reply[1] is None
        assert (await fast.ids("wait"), await fast.ids("active")) == (["b"], ["other"])
    else:
        assert text(reply[1][1]) == "b"
        assert (await fast.ids("wait"), await fast.ids("active")) == ([], ["b", "other"])
    assert await fast.ids("completed") == ["a"]
    await assert_same_as_bullmq(pair, reply, ref_next)


async def test_no_fetch_on_a_rate_limited_queue(bench: Bench) -> None:
    """A global rate limit is left to bullmq's moveToActive (which counts the jobs it takes)."""
    await _waiting_b(bench)
    await bench.queue.setGlobalRateLimit(5, 60_000)
    assert await bench.finish("a") == [ScriptCode.STORED, None]
    assert (await bench.ids("completed"), await bench.ids("wait"), await bench.ids("active")) == (
        ["a"],
        ["b"],
        [],
    )
    assert await bench.redis.exists(bench.prefix + "limiter") == 0
    assert (await bench.events())[-1]["event"] == "completed"


async def test_no_fetch_when_a_due_delayed_job_has_a_priority(bench: Bench) -> None:
    """bullmq's moveToActive would promote the prioritized job to the prioritized set; finishJobs
    promotes nothing and takes nothing."""
    await _waiting_b(bench)
    await bench.add("d1", delay=20)
    await bench.add("d2", delay=20, priority=3)
    await asyncio.sleep(0.08)
    before = await bench.ids("delayed")
    assert await bench.finish("a") == [ScriptCode.STORED, None]
    assert await bench.ids("delayed") == before == ["d1", "d2"]
    assert (await bench.ids("wait"), await bench.ids("active"), await bench.ids("prioritized")) == (
        ["b"],
        [],
        [],
    )
    assert (await bench.job("d1"))["delay"] == "20"
    assert (await bench.ids("completed")) == ["a"]
    assert (await bench.events())[-1] == COMPLETED_A


# ------------------------------------------------------------------------------ delayed jobs
@pytest.mark.parametrize("waiting", [True, False], ids=["a-job-waits", "none-waits"])
async def test_promotes_due_delayed_jobs_then_takes_the_oldest_waiting(
    pair: tuple[Bench, Bench], waiting: bool
) -> None:
    async def setup(b: Bench) -> Any:
        await b.add("a")
        job = await b.take()
        if waiting:
            await b.add("b")
        await b.add("d1", delay=20)
        await b.add("d2", delay=20)
        await b.add("later", delay=60_000)
        await asyncio.sleep(0.08)
        return job

    reply, ref_next = await run_both(pair, setup)
    fast = pair[0]
    taken = "b" if waiting else "d1"
    assert reply[0] == ScriptCode.STORED and text(reply[1][1]) == taken
    assert await fast.ids("delayed") == ["later"]
    assert await fast.ids("wait") == (["d2", "d1"] if waiting else ["d2"])
    assert await fast.ids("active") == [taken]
    for job_id in ("d1", "d2"):
        assert (await fast.job(job_id))["delay"] == "0"
    assert (await fast.events())[-3:] == [
        {"event": "waiting", "jobId": "d1", "prev": "delayed"},
        {"event": "waiting", "jobId": "d2", "prev": "delayed"},
        {"event": "active", "jobId": taken, "prev": "waiting"},
    ]
    await assert_same_as_bullmq(pair, reply, ref_next)


# ------------------------------------------------------------------------------ batches


async def test_a_batch_does_what_one_call_per_job_does(pair: tuple[Bench, Bench]) -> None:
    """Three jobs finished in one call, each slot taking the next: the queue ends as bullmq's
    moveToFinished (with fetchNext) leaves it, called once per job in the same order, and each
    slot took the job bullmq's call took for it."""
    fast, ref = pair
    ref_jobs = []
    for bench in pair:
        for job_id in "abcdef":
            await bench.add(job_id)
        ref_jobs = [await bench.take() for _ in range(3)]
    replies = await fast.finish_many([(job_id, True, []) for job_id in "abc"])
    ref_taken = []
    for job in ref_jobs:
        ref_next = await job.moveToCompleted(None, TOKEN, fetchNext=True)
        ref_taken.append(ref_next[1])
    assert [r[0] for r in replies] == [ScriptCode.STORED] * 3
    assert [text(r[1][1]) for r in replies] == ref_taken == ["d", "e", "f"]
    assert all(r[2] is None for r in replies)
    fast_keys, ref_keys = await fast.dump(exact=False), await ref.dump(exact=False)
    fast_events, ref_events = fast_keys.pop("events", []), ref_keys.pop("events", [])
    assert fast_keys == ref_keys
    # the same events; one call writes its completions before its takes
    key = json.dumps
    assert sorted(map(key, fast_events)) == sorted(map(key, ref_events))


async def test_a_batch_completes_the_jobs_it_may_and_leaves_the_others_as_they_were(bench: Bench) -> None:
    """One call for five jobs: two plain ones, one locked by another token and one with pending
    dependencies (both left to bullmq, unchanged), and the first one again (completed by then:
    left to bullmq). The completed jobs' locks are gone, they leave the stalled set (the others
    stay in it) and are in the completed set at their finishedOn."""
    for job_id in "abcd":
        await bench.add(job_id)
    for _ in range(4):
        await bench.take()
    await bench.redis.sadd(bench.keys["stalled"], "a", "b", "c", "d", "x")  # type: ignore[misc]
    await bench.redis.set(bench.prefix + "b:lock", "another-token")
    await bench.redis.sadd(bench.prefix + "c:dependencies", bench.prefix + "child")  # type: ignore[misc]
    untouched = {job_id: await bench.job(job_id) for job_id in "bc"}

    replies = await bench.finish_many([(job_id, False, []) for job_id in "abcda"])

    stored, left = ScriptCode.STORED, ScriptCode.USE_BULLMQ
    assert [r[0] for r in replies] == [stored, left, left, stored, left]
    assert await bench.redis.smembers(bench.keys["stalled"]) == {b"b", b"c", b"x"}  # type: ignore[misc]
    assert [await bench.redis.exists(bench.prefix + j + ":lock") for j in "abcd"] == [0, 1, 1, 0]
    assert text(await bench.redis.get(bench.prefix + "b:lock")) == "another-token"
    assert text(await bench.redis.get(bench.prefix + "c:lock")) == TOKEN
    completed = await bench.redis.zrange(bench.keys["completed"], 0, -1, withscores=True)
    assert {text(m): int(score) for m, score in completed} == {
        job_id: int((await bench.job(job_id))["finishedOn"]) for job_id in "ad"
    }
    assert {job_id: await bench.job(job_id) for job_id in "bc"} == untouched
    assert await bench.ids("active") == ["c", "b"]
    assert [e["jobId"] for e in await bench.events() if e["event"] == "completed"] == ["a", "d"]


async def test_a_count_limit_in_a_batch_counts_the_jobs_completed_before_it(bench: Bench) -> None:
    """a keeps every completed job, then b keeps the newest 2: as bullmq's moveToFinished called
    for a and then b leaves it, the older completed jobs are gone and a and b are kept."""
    await bench.plant_completed("o1", 30)
    await bench.plant_completed("o2", 20)
    await bench.add("a")
    await bench.add("b")
    await bench.take()
    await bench.take()

    replies = await bench.finish_many([("a", False, []), ("b", False, [])], keeps=[-1, 2])

    assert [r[0] for r in replies] == [ScriptCode.STORED] * 2
    assert await bench.ids("completed") == ["a", "b"]
    assert [await bench.redis.exists(bench.prefix + j) for j in ("o1", "o2", "a", "b")] == [0, 0, 1, 1]


async def test_a_batch_commits_each_node_then_finishes_its_job(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    """A diamond run driven by finishJobs alone: each job's commit (completeNode's) goes in the
    call that completes the job; the join becomes ready in the call that commits its last
    predecessor and the slot whose commit readied it takes it; the node metrics are counted per
    call."""
    diamond = compile_blueprint(
        load_blueprint(
            {
                "id": f"{key_prefix}-diamond",
                "nodes": [{"id": n, "uses": "x"} for n in "abcd"],
                "edges": [{"source": s_, "target": t} for s_, t in ("ab", "ac", "bd", "cd")],
            }
        )
    )
    store = RedisCoordinationStore(redis_client, bench.name)
    run = f"{key_prefix}-run"
    assert (await store.start_run(run, diamond, [], RunOptions())).committed
    ix = diamond.index
    before = await redis_client.hget(keys.METRICS_KEY, "nc")  # type: ignore[misc]

    def values(node: str) -> list[Any]:
        return store.commit_values(
            NodeCommit(run, diamond.content_hash, ix[node], 0, writes=[(f"_outputs.{node}", f'"{node}"')])
        )

    id_key = keys.queue_keys(bench.name)["id"]
    ids_before = int(await redis_client.get(id_key) or 0)
    job_a = await bench.take()
    [(code, taken, committed)] = await bench.finish_many([(job_a.id, True, values("a"))])
    assert (code, [text(v) for v in committed]) == (ScriptCode.STORED, [1, 2, "running"])
    # bullmq's id counter advances once per job added (b and c), as its addJob scripts do
    assert int(await redis_client.get(id_key)) == ids_before + 2
    assert text(taken[1]) == keys.job_id(run, "b")
    job_c = await bench.take()
    assert job_c.id == keys.job_id(run, "c")

    replies = await bench.finish_many(
        [(keys.job_id(run, "b"), True, values("b")), (job_c.id, True, values("c"))]
    )
    assert [r[0] for r in replies] == [ScriptCode.STORED] * 2
    assert [[text(v) for v in r[2]] for r in replies] == [[1, 0, "running"], [1, 1, "running"]]
    # the join is handed to the slot whose commit readied it (c's, the last predecessor); b's
    # slot finds nothing waiting
    assert replies[0][1] is None
    assert text(replies[1][1][1]) == keys.job_id(run, "d")
    assert await bench.ids("active") == [keys.job_id(run, "d")] and await bench.ids("wait") == []

    [(code, taken, committed)] = await bench.finish_many([(keys.job_id(run, "d"), False, values("d"))])
    assert (code, taken, [text(v) for v in committed]) == (ScriptCode.STORED, None, [1, 0, "completed"])
    status = json.loads(await redis_client.get(keys.status_key(run)))
    assert status["status"] == "completed"
    assert {k: v for k, v in status["payload"]["context"].items() if k.startswith("_outputs.")} == {
        f"_outputs.{n}": n for n in "abcd"
    }
    assert await bench.ids("completed") == [keys.job_id(run, n) for n in "abcd"]
    assert await bench.ids("active") == [] and await bench.ids("wait") == []
    after = await redis_client.hget(keys.METRICS_KEY, "nc")  # type: ignore[misc]
    assert int(after) - int(before or 0) == 4
    records = await redis_client.hmget(keys.run_key(run), [f"k:{ix[n]}" for n in "abcd"])  # type: ignore[misc]
    assert all(json.loads(r)["t1"] > 0 for r in records)


async def test_a_commit_that_raises_does_not_stop_the_others(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    """A commit that raises a script error is reported in its reply (its job is completed all the
    same; the reconciler runs the node again) and the other jobs' commits of the call land."""
    compiled = compile_blueprint(load_blueprint(_blueprint(key_prefix)))
    store = RedisCoordinationStore(redis_client, bench.name)
    good, bad = f"{key_prefix}-good", f"{key_prefix}-bad"
    for run in (good, bad):
        assert (await store.start_run(run, compiled, [], RunOptions())).committed
    job_1 = await bench.take()
    job_2 = await bench.take()
    jobs = {job_1.id: job_1, job_2.id: job_2}
    a = compiled.index["A"]
    broken = store.commit_values(NodeCommit(bad, compiled.content_hash, a, 0))
    broken[4 + 1] = "not-an-index"  # completeNode's ARGV[2]
    fine = store.commit_values(NodeCommit(good, compiled.content_hash, a, 0))
    replies = await bench.finish_many(
        [(keys.job_id(bad, "A"), False, broken), (keys.job_id(good, "A"), False, fine)]
    )
    assert set(jobs) == {keys.job_id(bad, "A"), keys.job_id(good, "A")}
    (code_bad, _, error), (code_good, _, committed) = replies
    assert (code_bad, code_good) == (ScriptCode.STORED, ScriptCode.STORED)
    assert isinstance(error, bytes) and error
    assert [text(v) for v in committed] == [1, 1, "running"]
    assert await redis_client.hget(keys.run_key(bad), f"s:{a}") == b"1"  # still ready: not committed
    assert await redis_client.hget(keys.run_key(good), f"s:{a}") == b"3"
    assert sorted(await bench.ids("completed")) == sorted(jobs)


async def test_a_commit_without_its_execution_facts_does_not_read_the_next_jobs_values(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    """The commit values are read in place (not copied) and end where the job's group ends: a
    commit that leaves out completeNode's last values (attempt, start time, error) is recorded
    with attempt 0 and start 0, although the next job's values (its id "12" first) follow it in
    the call."""
    compiled = compile_blueprint(load_blueprint(_blueprint(key_prefix)))
    store = RedisCoordinationStore(redis_client, bench.name)
    run = f"{key_prefix}-short"
    assert (await store.start_run(run, compiled, [], RunOptions())).committed
    await bench.add("12")
    assert (await bench.take()).id == keys.job_id(run, "A")
    assert (await bench.take()).id == "12"
    a = compiled.index["A"]
    commit = NodeCommit(run, compiled.content_hash, a, 0, attempt=3, started_at=1_700_000_000_000)
    assert store.commit_values(commit)[-3:] == [3, 1_700_000_000_000, ""]
    without = store.commit_values(commit)[:-3]
    replies = await bench.finish_many([(keys.job_id(run, "A"), False, without), ("12", False, [])])
    assert [r[0] for r in replies] == [ScriptCode.STORED] * 2
    assert [text(v) for v in replies[0][2]] == [1, 1, "running"]
    record = json.loads(await redis_client.hget(keys.run_key(run), f"k:{a}"))  # type: ignore[misc]
    assert (record["a"], record["t0"], "e" in record) == (0, 0, False)


async def test_the_index_remembered_per_blueprint_is_checked_against_the_runs_graph(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    """One call takes the jobs of node Z for two runs of blueprint "bp" on two graph versions
    (Z is node 3 in the first, 5 in the second): the second take does not trust the index the
    first one learnt, it reads its own run's."""
    for n, (graph, index) in enumerate([(f"{key_prefix}-v1", 3), (f"{key_prefix}-v2", 5)]):
        await redis_client.hset(keys.graph_key(graph), mapping={"meta": "{}", "ix:Z": index})  # type: ignore[misc]
        run = f"{key_prefix}-run{n}"
        await redis_client.hset(  # type: ignore[misc]
            keys.run_key(run),
            mapping={"st": "running", "g": graph, "bp": "bp", f"s:{index}": "1", f"it:{index}": str(index)},
        )
        await redis_client.hset(keys.state_key(run), "_inputs.Z", str(n))  # type: ignore[misc]
    for job_id in ("a", "b"):
        await bench.add(job_id)
    for n in range(2):
        await bench.add(f"z{n}", {"runId": f"{key_prefix}-run{n}", "blueprintId": "bp", "nodeId": "Z"})
    await bench.take()
    await bench.take()

    replies = await bench.finish_many([("a", True, []), ("b", True, [])])

    got = [(text(r[1][1]), r[1][3], r[1][4][:2], r[1][5]) for r in replies]
    assert got == [("z0", 3, [b"1", b"3"], b"0"), ("z1", 5, [b"1", b"5"], b"1")]


# ------------------------------------------------------------------------------ hand-off
async def _chain_run(store: RedisCoordinationStore, compiled: Any, run: str, bench: Bench) -> list[Any]:
    """A started run of A -> B with A's job taken; returns the commit values of A (B's input set)."""
    assert (await store.start_run(run, compiled, [], RunOptions())).committed
    job_a = await bench.take()
    assert job_a.id == keys.job_id(run, "A")
    a, b = compiled.index["A"], compiled.index["B"]
    return store.commit_values(
        NodeCommit(run, compiled.content_hash, a, 0, inputs=[(b, "_inputs.B", '"hi"', True)])
    )


async def test_a_slot_gets_the_job_its_commit_readies_as_moveToActive_leaves_it(
    pair: tuple[Bench, Bench], redis_client: Redis, key_prefix: str
) -> None:
    """The job B that A's commit readies is handed to A's slot, never waiting: its hash is the
    one bullmq's moveToActive leaves when it takes B from the wait list (the reference queue: A
    finished without fetching, then B taken by bullmq), it is active and locked by the slot's
    token, and the slot reads what B's node needs along."""
    fast, ref = pair
    compiled = compile_blueprint(load_blueprint(_blueprint(key_prefix)))
    stores = [RedisCoordinationStore(redis_client, b.name) for b in pair]
    runs = [f"{key_prefix}-fast", f"{key_prefix}-ref"]
    values = [await _chain_run(s, compiled, r, b) for s, r, b in zip(stores, runs, pair, strict=True)]

    [(code, taken, committed)] = await fast.finish_many([(keys.job_id(runs[0], "A"), True, values[0])])
    [(ref_code, ref_taken, _)] = await ref.finish_many([(keys.job_id(runs[1], "A"), False, values[1])])
    job_b = await ref.take()

    assert (code, ref_code, ref_taken) == (ScriptCode.STORED, ScriptCode.STORED, None)
    assert [text(v) for v in committed] == [1, 1, "running"]
    flat, job_id, run_fields, index, node_fields, node_input = taken
    b_fast, b_ref = keys.job_id(runs[0], "B"), keys.job_id(runs[1], "B")
    assert (text(job_id), job_b.id) == (b_fast, b_ref)

    def same(job: dict[str, str], run: str) -> dict[str, str]:
        return without_times({k: v.replace(run, "<run>") for k, v in job.items()})

    assert same(flat_to_dict(flat), runs[0]) == same(await fast.job(b_fast), runs[0])
    assert same(await fast.job(b_fast), runs[0]) == same(await ref.job(b_ref), runs[1])
    assert (await fast.job(b_fast))["ats"] == "1"
    assert (await fast.ids("active"), await fast.ids("wait")) == ([b_fast], [])
    await assert_locked(fast, b_fast)
    b = compiled.index["B"]
    assert [text(v) for v in run_fields] == ["running", compiled.content_hash, compiled.id]
    assert index == b
    fields = [f"{name}:{b}" for name in ("s", "it", "t", "ff", "rs", "d")]
    assert node_fields == await redis_client.hmget(keys.run_key(runs[0]), fields)  # type: ignore[misc]
    assert node_fields[0] == b"1" and node_input == b'"hi"'
    # never waiting: added, then active once A is completed
    events = [e for e in await fast.events() if e.get("jobId") in (b_fast, keys.job_id(runs[0], "A"))]
    assert [(e["event"], e["jobId"]) for e in events][-3:] == [
        ("added", b_fast),
        ("completed", keys.job_id(runs[0], "A")),
        ("active", b_fast),
    ]


async def test_a_handed_job_waits_when_the_slots_own_job_is_left_to_bullmq(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    """A's lock was lost (another token holds it): A's commit still lands, but A is left to
    bullmq, so B cannot be A's slot's next job; B is queued as any readied job is -- waiting,
    without the take's fields, a blocked worker woken -- and bullmq's moveToActive takes it."""
    compiled = compile_blueprint(load_blueprint(_blueprint(key_prefix)))
    store = RedisCoordinationStore(redis_client, bench.name)
    run = f"{key_prefix}-run"
    values = await _chain_run(store, compiled, run, bench)
    job_b = keys.job_id(run, "B")
    await redis_client.zrem(bench.keys["marker"], "0")

    [(code, taken, committed)] = await bench.finish_many(
        [(keys.job_id(run, "A"), True, values)], token="other"
    )

    assert (code, taken, [text(v) for v in committed]) == (ScriptCode.USE_BULLMQ, None, [1, 1, "running"])
    assert (await bench.ids("wait"), await bench.ids("active")) == ([job_b], [keys.job_id(run, "A")])
    hash_b = await bench.job(job_b)
    assert "processedOn" not in hash_b and "ats" not in hash_b
    assert await redis_client.zscore(bench.keys["marker"], "0") == 0
    assert [(e["event"], e.get("jobId")) for e in await bench.events()][-2:] == [
        ("added", job_b),
        ("waiting", job_b),
    ]
    taken_b = await bench.take("t2")  # bullmq's moveToActive
    assert taken_b.id == job_b
    assert (await bench.job(job_b))["ats"] == "1"


async def test_no_hand_off_on_a_paused_queue(bench: Bench, redis_client: Redis, key_prefix: str) -> None:
    compiled = compile_blueprint(load_blueprint(_blueprint(key_prefix)))
    store = RedisCoordinationStore(redis_client, bench.name)
    run = f"{key_prefix}-run"
    values = await _chain_run(store, compiled, run, bench)
    await bench.queue.pause()

    [(code, taken, _)] = await bench.finish_many([(keys.job_id(run, "A"), True, values)])

    assert (code, taken) == (ScriptCode.STORED, None)
    assert (await bench.ids("wait"), await bench.ids("active")) == ([keys.job_id(run, "B")], [])
    assert "processedOn" not in await bench.job(keys.job_id(run, "B"))


async def test_commits_that_read_their_successors_along_leave_the_runs_as_single_commits_do(
    bench: Bench, redis_client: Redis, key_prefix: str
) -> None:
    """The second commit of a node in one call has the node's graph record already and reads its
    successors' status and join fields with its run (commitNode's run.joins): a direct successor,
    a join that keeps waiting, a join that becomes ready (its sets are then never written) and a
    successor skipped by an edge not taken, whose skip reaches the join again in the same commit.
    Two runs driven that way end with the same run hash, state and status as a run committed one
    node per call."""
    compiled = compile_blueprint(
        load_blueprint(
            {
                "id": f"{key_prefix}-joins",
                "nodes": [{"id": n, "uses": "x"} for n in "abcde"],
                "edges": [{"source": s_, "target": t} for s_, t in ("ab", "ac", "bd", "cd", "ce", "ed")],
            }
        )
    )
    ix, graph = compiled.index, compiled.graph
    c_to_d = next(e for e in graph.out_edges(ix["c"]) if graph.edge(e)[1] == ix["d"])
    store = RedisCoordinationStore(redis_client, bench.name)
    batched = [f"{key_prefix}-x1", f"{key_prefix}-x2"]
    single = f"{key_prefix}-y"
    for run in [*batched, single]:
        assert (await store.start_run(run, compiled, [], RunOptions())).committed

    def entry(run: str, node: str) -> tuple[str, bool, list[Any]]:
        commit = NodeCommit(
            run,
            compiled.content_hash,
            ix[node],
            0,
            taken=[c_to_d] if node == "c" else None,  # c -> e is not taken: e is skipped
            writes=[(f"_outputs.{node}", f'"{node}"')],
            inputs=[
                (graph.edge(e)[1], f"_inputs.{compiled.nodes[graph.edge(e)[1]].id}", f'"{node}"', False)
                for e in graph.out_edges(ix[node])
            ],
        )
        return keys.job_id(run, node), False, store.commit_values(commit)

    async def take_all() -> None:
        while await bench.ids("wait"):
            assert await bench.worker.getNextJob(TOKEN) is not None

    for nodes in (["a"], ["b", "c"], ["d"]):
        await take_all()
        for node in nodes:
            replies = await bench.finish_many([entry(run, node) for run in batched])
            assert [r[0] for r in replies] == [ScriptCode.STORED] * 2
            [(code, _, _)] = await bench.finish_many([entry(single, node)])
            assert code == ScriptCode.STORED

    async def snapshot(run: str) -> dict[str, Any]:
        run_hash = {
            text(k): text(v)
            for k, v in (await redis_client.hgetall(keys.run_key(run))).items()  # type: ignore[misc]
        }
        for name in ("ts", "lu", "tf", "ch"):
            assert run_hash.pop(name)
        for i in range(5):  # task records hold times; a skipped node has none
            if run_hash.pop(f"k:{i}", None) is not None:
                assert i != ix["e"]
        state = {
            text(k): text(v)
            for k, v in (await redis_client.hgetall(keys.state_key(run))).items()  # type: ignore[misc]
        }
        status = json.loads(await redis_client.get(keys.status_key(run)))
        return {"run": run_hash, "state": state, "status": status}

    expected = await snapshot(single)
    assert expected["status"]["status"] == "completed"
    assert expected["run"][f"s:{ix['e']}"] == "4" and expected["run"][f"s:{ix['d']}"] == "3"
    d = ix["d"]
    assert not any(name in expected["run"] for name in (f"a:{d}", f"a:{d}#", f"r:{d}", f"r:{d}#"))
    for run in batched:
        assert await snapshot(run) == expected


# ------------------------------------------------------------------------------ a slot without a job
async def test_a_slot_without_a_job_takes_one_as_moveToActive_does(pair: tuple[Bench, Bench]) -> None:
    """An entry with no job id completes nothing and takes the next waiting job as bullmq's
    moveToActive takes it on the other queue: both queues then hold the same keys and events."""
    fast, ref = pair
    for b in pair:
        await b.add("a")
        await b.add("b")
    [(code, taken, committed)] = await fast.finish_many([("", True, [])])
    job = await ref.take()
    assert (code, committed, job.id) == (ScriptCode.STORED, None, "a")
    flat, job_id, *read = taken
    assert (text(job_id), read) == ("a", [None, None, None, None])
    assert flat_to_dict(flat) == await fast.job("a")
    await assert_locked(fast, "a")
    fast_keys, ref_keys = await fast.dump(exact=False), await ref.dump(exact=False)
    assert fast_keys == ref_keys


async def test_a_slot_without_a_job_takes_nothing_when_nothing_waits_and_changes_nothing(
    bench: Bench,
) -> None:
    await bench.add("a")
    await bench.take()
    before = await bench.dump(exact=False)
    assert await bench.finish_many([("", True, []), ("", False, [])]) == [
        [ScriptCode.STORED, None, None],
        [ScriptCode.STORED, None, None],
    ]
    assert await bench.dump(exact=False) == before  # no "drained" event either: nothing was finished


async def test_a_slot_without_a_job_takes_none_from_a_paused_queue(bench: Bench) -> None:
    await bench.add("a")
    await bench.queue.pause()
    assert await bench.finish_many([("", True, [])]) == [[ScriptCode.STORED, None, None]]
    assert await bench.ids("wait") == ["a"] and await bench.ids("active") == []
