"""The jobs bullflow's Lua scripts write into a BullMQ queue (``includes/enqueueNode.lua``, which
mimics bullmq's ``addStandardJob`` / ``addDelayedJob``) are real bullmq jobs: bullmq's own Python
``Queue`` getters and a Node ``Queue`` list them, a plain bullmq ``Worker`` consumes them, and what
a bullflow worker ran shows up as completed (or delayed) the way bullmq reports its own jobs. Two
tests compare the Redis records field for field with what Node bullmq writes for the same job."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bullmq import Queue, Worker

from bullflow.settings import RedisSettings

from .test_node_client import NODE_SKIP, run_node_script

needs_node = pytest.mark.skipif(NODE_SKIP is not None, reason=NODE_SKIP or "")

DEFAULT_JOB_OPTIONS = {"removeOnComplete": {"age": 604800}, "removeOnFail": {"age": 1296000}}

WIRE: dict[str, Any] = {
    "id": "wire",
    "nodes": [
        {"id": "A", "uses": "echo"},
        {"id": "R", "uses": "echo", "config": {"maxRetries": 3, "retryDelay": 50}},
        {"id": "B", "uses": "echo"},
    ],
    "edges": [{"source": "A", "target": "B"}, {"source": "R", "target": "B"}],
}

SLEEPY: dict[str, Any] = {
    "id": "sleepy",
    "nodes": [
        {"id": "S0", "uses": "echo", "params": {"value": "before"}},
        {"id": "Z", "uses": "sleep", "params": {"duration": 1500}},
        {"id": "E", "uses": "echo"},
    ],
    "edges": [{"source": "S0", "target": "Z"}, {"source": "Z", "target": "E"}],
}


def bq_connection(redis_url: str) -> dict[str, Any]:
    """A bullmq connection dict (no client-side read timeout: see the bullmq notes §0)."""
    s = RedisSettings.from_url(redis_url)
    return {"host": s.host, "port": s.port, "db": s.db, "socket_timeout": None}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10, what: str = "") -> Any:
    """Polls ``check`` every 20 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(0.02)


def job_data(run_id: str, blueprint_id: str, node_id: str) -> dict[str, str]:
    return {"runId": run_id, "blueprintId": blueprint_id, "nodeId": node_id}


async def all_completed(queue: Queue, n: int) -> dict[str, int] | None:
    """The queue's counts once ``n`` jobs are completed and nothing else is left, else None."""
    counts = await queue.getJobCounts("wait", "active", "delayed", "completed", "failed")
    return counts if counts["completed"] >= n and counts["active"] == counts["wait"] == 0 else None


async def node_probe(redis_url: str, queue: str, *job_ids: str) -> dict[str, Any]:
    out = await run_node_script("probe.mjs", *job_ids, env={"REDIS_URL": redis_url, "QUEUE": queue})
    return dict(json.loads(out))


# ------------------------------------------------------------------------- a run, no worker
async def test_bullmq_queue_getters_see_the_jobs_bullflow_enqueues(
    make_client: Any, redis_server: str, key_prefix: str
) -> None:
    before = int(time.time() * 1000)
    handle = await make_client([WIRE]).start("wire", {"k": 1})
    run = handle.run_id
    queue = Queue(key_prefix, {"connection": bq_connection(redis_server)})
    try:
        counts = await queue.getJobCounts("wait", "active", "delayed", "completed", "failed")
        assert counts == {"wait": 2, "active": 0, "delayed": 0, "completed": 0, "failed": 0}
        assert {job.id for job in await queue.getWaiting()} == {f"{run}_A", f"{run}_R"}
        assert {job.id for job in await queue.getJobs(["wait"])} == {f"{run}_A", f"{run}_R"}

        job = await queue.getJob(f"{run}_R")
        assert job is not None
        assert job.id == f"{run}_R" and job.name == "executeNode"
        assert job.data == job_data(run, "wire", "R")
        assert job.opts["jobId"] == f"{run}_R"
        assert job.opts["attempts"] == 3
        assert job.opts["backoff"] == {"type": "fixed", "delay": 50}
        assert job.opts["removeOnComplete"] == DEFAULT_JOB_OPTIONS["removeOnComplete"]
        assert job.opts["removeOnFail"] == DEFAULT_JOB_OPTIONS["removeOnFail"]
        assert job.delay == 0 and job.priority == 0 and job.attemptsMade == 0
        assert before <= job.timestamp <= int(time.time() * 1000)
        assert await queue.getJobState(f"{run}_R") == "waiting"

        plain = await queue.getJob(f"{run}_A")
        assert plain is not None and plain.data == job_data(run, "wire", "A")
        assert plain.opts["attempts"] == 0 and plain.opts.get("backoff") is None  # no retries configured
        assert await queue.getJob(f"{run}_B") is None  # not ready yet
    finally:
        await queue.close()


@needs_node
async def test_a_node_queue_sees_the_jobs_bullflow_enqueues(
    make_client: Any, redis_server: str, key_prefix: str
) -> None:
    handle = await make_client([WIRE]).start("wire")
    run = handle.run_id
    seen = await node_probe(redis_server, key_prefix, f"{run}_R", f"{run}_A", f"{run}_B")

    assert seen["counts"]["waiting"] == 2  # Node's getJobCounts() names the wait list "waiting"
    assert sum(v for k, v in seen["counts"].items() if k != "waiting") == 0
    assert {job["id"] for job in seen["wait"]} == {f"{run}_A", f"{run}_R"}
    job = seen["jobs"][f"{run}_R"]
    assert job["name"] == "executeNode" and job["state"] == "waiting"
    assert job["data"] == job_data(run, "wire", "R")
    assert job["opts"]["attempts"] == 3 and job["opts"]["backoff"] == {"type": "fixed", "delay": 50}
    assert job["opts"]["jobId"] == f"{run}_R" and job["delay"] == 0 and job["attemptsMade"] == 0
    assert seen["jobs"][f"{run}_A"]["data"] == job_data(run, "wire", "A")
    assert seen["jobs"][f"{run}_B"] is None


@needs_node
async def test_lua_written_jobs_are_the_records_node_bullmq_writes(
    make_client: Any, redis_server: str, key_prefix: str, redis_client: Any
) -> None:
    """The same two jobs added by Node's ``queue.addBulk`` to a sibling queue leave the same job
    hashes (but for the timestamp), wait list, marker, events and meta counter."""
    handle = await make_client([WIRE]).start("wire")
    run = handle.run_id
    ours = f"bull:{key_prefix}:"
    theirs_queue = key_prefix + "-node"
    theirs = f"bull:{theirs_queue}:"
    jobs = []
    for node in ("A", "R"):
        raw = await redis_client.hgetall(f"{ours}{run}_{node}")
        jobs.append(
            {
                "name": raw[b"name"].decode(),
                "data": json.loads(raw[b"data"]),
                "opts": json.loads(raw[b"opts"]),
            }
        )
    out = await run_node_script(
        "add.mjs", json.dumps(jobs), env={"REDIS_URL": redis_server, "QUEUE": theirs_queue}
    )
    assert json.loads(out) == [f"{run}_A", f"{run}_R"]

    for node in ("A", "R"):
        mine = await redis_client.hgetall(f"{ours}{run}_{node}")
        node_written = await redis_client.hgetall(f"{theirs}{run}_{node}")
        assert set(mine) == set(node_written)
        for field in (b"name", b"data", b"delay", b"priority"):
            assert mine[field] == node_written[field], field
        node_opts = json.loads(node_written[b"opts"])
        mine_opts = json.loads(mine[b"opts"])
        mine_opts.setdefault("attempts", 0)  # Node's Job defaults attempts to 0 and stores it
        assert mine_opts == node_opts
    assert await redis_client.lrange(ours + "wait", 0, -1) == await redis_client.lrange(
        theirs + "wait", 0, -1
    )
    assert await redis_client.zrange(ours + "marker", 0, -1, withscores=True) == await redis_client.zrange(
        theirs + "marker", 0, -1, withscores=True
    )
    assert await redis_client.get(ours + "id") == await redis_client.get(theirs + "id") == b"2"
    assert await redis_client.hget(ours + "meta", "opts.maxLenEvents") == await redis_client.hget(
        theirs + "meta", "opts.maxLenEvents"
    )

    def events(entries: list[Any]) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in entries]

    assert events(await redis_client.xrange(ours + "events")) == events(
        await redis_client.xrange(theirs + "events")
    )


async def test_a_plain_bullmq_worker_consumes_a_job_bullflow_enqueued(
    make_client: Any, redis_server: str, key_prefix: str
) -> None:
    handle = await make_client([WIRE]).start("wire", {"k": 1})
    run = handle.run_id
    seen: dict[str, Any] = {}
    both = asyncio.Event()

    async def process(job: Any, token: str) -> Any:
        seen[job.id] = {"name": job.name, "data": job.data, "attempts": job.opts.get("attempts")}
        if len(seen) == 2:
            both.set()
        return {"seen": job.data["nodeId"]}

    connection = bq_connection(redis_server)
    worker = Worker(key_prefix, process, {"connection": connection})
    queue = Queue(key_prefix, {"connection": connection})
    try:
        await asyncio.wait_for(both.wait(), 10)
        assert seen == {
            f"{run}_A": {"name": "executeNode", "data": job_data(run, "wire", "A"), "attempts": 0},
            f"{run}_R": {"name": "executeNode", "data": job_data(run, "wire", "R"), "attempts": 3},
        }

        async def both_completed() -> Any:
            counts = await queue.getJobCounts("completed")
            return counts["completed"] == 2

        await eventually(both_completed, what="the two jobs to complete")
        done = {job.id: job for job in await queue.getJobs(["completed"])}
        assert set(done) == {f"{run}_A", f"{run}_R"}
        assert done[f"{run}_R"].returnvalue == {"seen": "R"} and done[f"{run}_R"].finishedOn > 0
    finally:
        await asyncio.wait_for(worker.close(), 10)
        await queue.close()


# -------------------------------------------------------------------- a bullflow worker ran it
async def test_jobs_a_bullflow_worker_ran_are_completed_bullmq_jobs(
    spawn_worker: Any, make_client: Any, redis_server: str, key_prefix: str
) -> None:
    spawn_worker([WIRE])
    handle = await make_client([WIRE]).start("wire")
    result = await handle.result(15)
    assert result.status == "completed", result.errors
    run = handle.run_id
    queue = Queue(key_prefix, {"connection": bq_connection(redis_server)})
    try:
        # the run's status is published by the last node's commit, just before its job is
        # moved to completed
        counts = await eventually(lambda: all_completed(queue, 3), what="3 completed jobs")
        assert counts == {"wait": 0, "active": 0, "delayed": 0, "completed": 3, "failed": 0}
        done = {job.id: job for job in await queue.getJobs(["completed"])}
        assert set(done) == {f"{run}_A", f"{run}_R", f"{run}_B"}
        for node, job in ((j.id.rsplit("_", 1)[1], j) for j in done.values()):
            assert job.name == "executeNode" and job.data == job_data(run, "wire", node)
            # processedOn is the Python worker's clock, read before it waits for its connection
            # lock, so it may precede the enqueue time by a few ms; finishedOn follows it
            assert 0 < job.timestamp <= job.finishedOn and 0 < job.processedOn <= job.finishedOn
            assert job.attemptsMade == 1 and job.failedReason is None
        assert await queue.getJobState(f"{run}_B") == "completed"
    finally:
        await queue.close()


async def test_a_sleep_node_is_a_delayed_bullmq_job(
    spawn_worker: Any, make_client: Any, redis_server: str, key_prefix: str
) -> None:
    spawn_worker([SLEEPY])
    started = time.monotonic()
    handle = await make_client([SLEEPY]).start("sleepy")
    run = handle.run_id
    woken = f"{run}_Z_1"  # the sleep node's second execution, its wake-up
    queue = Queue(key_prefix, {"connection": bq_connection(redis_server)})
    try:

        async def delayed() -> Any:
            return [job for job in await queue.getDelayed() if job.id == woken]

        [job] = await eventually(delayed, 5, "the sleep node's delayed job")
        assert job.name == "executeNode"
        assert job.data == {**job_data(run, "sleepy", "Z"), "iteration": 1}
        assert 800 <= job.delay <= 1500 and job.opts["delay"] == job.delay
        assert await queue.getJobState(woken) == "delayed"
        assert (await queue.getJobCounts("delayed"))["delayed"] == 1

        result = await handle.result(10)
        elapsed = time.monotonic() - started
        assert result.status == "completed", result.errors
        assert elapsed >= 1.4, elapsed
        assert result.context["_outputs.Z"] == "before" and result.context["_outputs.E"] == "E(before)"
        await eventually(lambda: all_completed(queue, 4), what="4 completed jobs")
        done = {j.id: j for j in await queue.getJobs(["completed"])}
        assert set(done) == {f"{run}_S0", f"{run}_Z", woken, f"{run}_E"}
        # promoted once due (a few ms of slack: see the completed-jobs test) and soon after:
        # bullmq-python rounds its blocking wait up to whole seconds on this server
        # (capabilities canDoubleTimeout=False), so up to ~1 s late. (Promotion resets the
        # job's delay field to 0, so the due time comes from the delayed record.)
        due = job.timestamp + job.delay
        assert done[woken].delay == 0 and done[woken].timestamp == job.timestamp
        assert due - 50 <= done[woken].processedOn < due + 1300
    finally:
        await queue.close()


async def delayed_record(redis_client: Any, prefix: str, job_id: str) -> tuple[Any, list[Any]]:
    """A job's score in the queue's delayed set and the queue's "delayed" events."""
    score = await redis_client.zscore(prefix + "delayed", job_id)
    events = [
        fields for _, fields in await redis_client.xrange(prefix + "events") if fields[b"event"] == b"delayed"
    ]
    return score, events


@needs_node
async def test_a_node_queue_sees_completed_and_delayed_jobs_of_a_bullflow_worker(
    spawn_worker: Any, make_client: Any, redis_server: str, key_prefix: str, redis_client: Any
) -> None:
    spawn_worker([SLEEPY])
    handle = await make_client([SLEEPY]).start("sleepy")
    run = handle.run_id
    woken = f"{run}_Z_1"
    ours = f"bull:{key_prefix}:"
    raw = await eventually(lambda: redis_client.hgetall(ours + woken), 5, "the delayed job")
    # the delayed record of our queue, read before the Node scripts below take their time (the
    # job is promoted when due, 1.5 s after it was added)
    records = {ours: (raw, *(await delayed_record(redis_client, ours, woken)))}
    seen = await node_probe(redis_server, key_prefix, woken)

    # the delayed record is the one Node's queue.add writes for the same job and delay
    twin = key_prefix + "-node"
    job = {"name": raw[b"name"].decode(), "data": json.loads(raw[b"data"]), "opts": json.loads(raw[b"opts"])}
    await run_node_script("add.mjs", json.dumps([job]), env={"REDIS_URL": redis_server, "QUEUE": twin})
    node_raw = await redis_client.hgetall(f"bull:{twin}:{woken}")
    assert set(raw) == set(node_raw)
    for field in (b"name", b"data", b"delay", b"priority"):
        assert raw[field] == node_raw[field], field
    assert {"attempts": 0, **job["opts"]} == json.loads(node_raw[b"opts"])
    records[f"bull:{twin}:"] = (node_raw, *(await delayed_record(redis_client, f"bull:{twin}:", woken)))
    for record, score, delayed_events in records.values():
        due = int(record[b"timestamp"]) + int(record[b"delay"])
        assert score == due * 0x1000
        assert delayed_events == [
            {b"event": b"delayed", b"jobId": woken.encode(), b"delay": str(due).encode()}
        ]

    assert seen["jobs"][woken]["state"] == "delayed"
    assert [job["id"] for job in seen["delayed"]] == [woken] and seen["counts"]["delayed"] == 1
    assert 800 <= seen["delayed"][0]["delay"] <= 1500
    completed = {job["id"]: job for job in seen["completed"]}
    assert set(completed) == {f"{run}_S0", f"{run}_Z"}
    assert all(job["finishedOn"] >= job["timestamp"] for job in completed.values())

    assert (await handle.result(10)).status == "completed"
    seen = await node_probe(redis_server, key_prefix, woken)
    deadline = time.monotonic() + 5
    while seen["counts"]["completed"] < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        seen = await node_probe(redis_server, key_prefix, woken)
    assert seen["jobs"][woken]["state"] == "completed" and seen["jobs"][woken]["finishedOn"] > 0
    assert seen["counts"]["completed"] == 4 and seen["counts"]["delayed"] == 0
