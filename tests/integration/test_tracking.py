"""Run tracking (bullflow.tracking): task records, the run log, the run index and the metrics,
written by the same scripts as the run state, read back from a real redis-server while real
workers run the runs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow import NodeContext, keys
from bullflow.coordination import RunOptions
from bullflow.tracking import (
    LATENCY_BUCKETS_MS,
    iso_ms,
    list_runs,
    node_detail,
    read_metrics,
    run_blueprint,
    run_view,
)

pytestmark = pytest.mark.timeout(60)


def ret(value: Any) -> Any:
    def node(ctx: NodeContext) -> Any:
        return value

    return node


def diamond(bp_id: str) -> dict[str, Any]:
    return {
        "id": bp_id,
        "nodes": [
            {"id": "A", "uses": "a"},
            {"id": "B", "uses": "b"},
            {"id": "C", "uses": "c", "config": {"maxRetries": 2, "retryDelay": 10}},
            {"id": "D", "uses": "d"},
        ],
        "edges": [
            {"source": "A", "target": "B"},
            {"source": "A", "target": "C"},
            {"source": "B", "target": "D"},
            {"source": "C", "target": "D"},
        ],
    }


@pytest.mark.parametrize("worker_loop", ["fast", "chained", "bullmq"])
async def test_a_finished_run_has_a_task_per_node_and_its_log(
    make_adapter: Any, make_client: Any, redis_client: Redis, worker_loop: str
) -> None:
    attempts: list[int] = []

    def c(ctx: NodeContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "c"

    bp = diamond(f"track-{uuid.uuid4().hex[:6]}")
    make_adapter([bp], registry={"a": ret("a"), "b": ret("b"), "c": c, "d": ret("d")})
    client = make_client([bp])
    handle = await client.start(bp["id"], {"topic": "x"})
    assert (await handle.result(20)).status == "completed"

    view = await run_view(redis_client, handle.run_id)
    assert view is not None
    assert (view.status, view.blueprint_id, view.reason) == ("completed", bp["id"], None)
    assert [(t.node_id, t.uses, t.status) for t in view.tasks] == [
        ("A", "a", "completed"),
        ("B", "b", "completed"),
        ("C", "c", "completed"),
        ("D", "d", "completed"),
    ]
    by_id = {t.node_id: t for t in view.tasks}
    assert attempts == [1, 2]
    assert by_id["C"].attempts == 2 and by_id["A"].attempts == 1
    for task in view.tasks:
        assert task.error is None
        assert task.started_at is not None and task.completed_at is not None
        assert view.started_at <= task.started_at <= task.completed_at <= (view.finished_at or 0)
    assert by_id["A"].completed_at <= by_id["B"].started_at  # type: ignore[operator]
    assert by_id["D"].started_at >= max(by_id["B"].completed_at, by_id["C"].completed_at)  # type: ignore[operator,type-var]
    types = [e.type for e in view.logs]
    assert types[0] == "run-started" and types[-1] == "run-completed"
    assert sorted(e.node_id for e in view.logs if e.type == "node-completed") == ["A", "B", "C", "D"]
    assert all(e.timestamp >= view.started_at for e in view.logs)
    doc = view.to_json()
    assert doc["runId"] == handle.run_id and doc["status"] == "completed"
    assert doc["startedAt"] == iso_ms(view.started_at) and doc["startedAt"].endswith("Z")
    assert doc["durationMs"] == view.finished_at - view.started_at  # type: ignore[operator]
    assert {t["nodeId"] for t in doc["tasks"]} == {"A", "B", "C", "D"}
    assert doc["logs"][-1]["type"] == "run-completed"
    # the log expires with the run
    ttl = RunOptions().state_ttl_seconds
    assert 0 < await redis_client.ttl(keys.run_log_key(handle.run_id)) <= ttl

    detail = await node_detail(redis_client, handle.run_id, "B")
    assert detail is not None
    assert (detail.task.status, detail.input, detail.output) == ("completed", "a", "b")
    assert await node_detail(redis_client, handle.run_id, "nope") is None
    assert await run_blueprint(redis_client, handle.run_id) == bp


async def test_a_failed_node_records_its_error_and_attempts_and_the_rest_stays_pending(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    def c(ctx: NodeContext) -> str:
        raise RuntimeError(f"attempt {ctx.attempt} broke")

    bp = diamond(f"trackfail-{uuid.uuid4().hex[:6]}")
    make_adapter([bp], registry={"a": ret("a"), "b": ret("b"), "c": c, "d": ret("d")})
    client = make_client([bp])
    handle = await client.start(bp["id"])
    assert (await handle.result(20)).status == "failed"
    view = await run_view(redis_client, handle.run_id)
    assert view is not None
    statuses = {t.node_id: t.status for t in view.tasks}
    assert statuses == {"A": "completed", "B": "completed", "C": "failed", "D": "pending"}
    failed = view.task("C")
    assert failed is not None and failed.attempts == 2  # maxRetries is Flowcraft's total attempts
    assert failed.error == "Node 'C' execution failed: RuntimeError: attempt 2 broke"
    assert view.status == "failed" and view.reason == "Node 'C' execution failed"
    entry = next(e for e in view.logs if e.type == "node-failed")
    assert entry.node_id == "C" and entry.message == failed.error
    assert view.logs[-1].type == "run-failed"


async def test_a_fallback_node_shows_the_failure_it_stood_in_for(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    def f(ctx: NodeContext) -> None:
        raise RuntimeError("primary down")

    bp = {
        "id": f"trackfb-{uuid.uuid4().hex[:6]}",
        "nodes": [
            {"id": "F", "uses": "f", "config": {"fallback": "G"}},
            {"id": "G", "uses": "g"},
        ],
        "edges": [],
    }
    make_adapter([bp], registry={"f": f, "g": ret("g")})
    client = make_client([bp])
    handle = await client.start(bp["id"])
    assert (await handle.result(20)).status == "completed"
    view = await run_view(redis_client, handle.run_id)
    assert view is not None
    f_task, g_task = view.task("F"), view.task("G")
    assert f_task is not None and g_task is not None
    assert (f_task.status, g_task.status) == ("failed", "completed")
    assert f_task.error is not None and "primary down" in f_task.error
    assert [e.type for e in view.logs if e.node_id] == ["node-fallback", "node-completed"]


async def test_running_and_queued_nodes_come_from_their_jobs_and_cancel_marks_them(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def hold(ctx: NodeContext) -> str:
        started.set()
        while not release.is_set():
            ctx.signal.raise_if_cancelled()
            await asyncio.sleep(0.02)
        return "held"

    bp = {
        "id": f"tracklive-{uuid.uuid4().hex[:6]}",
        "nodes": [{"id": "H", "uses": "hold"}, {"id": "N", "uses": "n"}],
        "edges": [{"source": "H", "target": "N"}],
    }
    client = make_client([bp])
    handle = await client.start(bp["id"])
    view = await run_view(redis_client, handle.run_id)
    assert view is not None
    assert [(t.node_id, t.status, t.attempts) for t in view.tasks] == [
        ("H", "queued", 0),
        ("N", "pending", 0),
    ]
    make_adapter([bp], registry={"hold": hold, "n": ret("n")}, concurrency=2)
    await asyncio.wait_for(started.wait(), 10)
    view = await run_view(redis_client, handle.run_id)
    assert view is not None
    running = view.task("H")
    assert running is not None and running.status == "running" and running.attempts == 1
    assert running.started_at is not None and running.started_at >= view.started_at
    assert view.status == "running" and view.finished_at is None
    assert await handle.cancel()
    release.set()
    view = await run_view(redis_client, handle.run_id)
    assert view is not None
    assert view.status == "cancelled" and view.finished_at is not None
    assert [(t.node_id, t.status) for t in view.tasks] == [("H", "cancelled"), ("N", "pending")]
    assert view.logs[-1].type == "run-cancelled"


async def test_the_view_is_never_half_updated(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    """Read while 20 fan-out runs progress: in every snapshot each completed node has its log
    entry and vice versa, and a finished run logs its end."""
    width = 8
    bp = {
        "id": f"trackatomic-{uuid.uuid4().hex[:6]}",
        "nodes": [
            {"id": "S", "uses": "n"},
            *({"id": f"W{k}", "uses": "n"} for k in range(width)),
            {"id": "J", "uses": "n"},
        ],
        "edges": [
            *({"source": "S", "target": f"W{k}"} for k in range(width)),
            *({"source": f"W{k}", "target": "J"} for k in range(width)),
        ],
    }

    async def n(ctx: NodeContext) -> str:
        await asyncio.sleep(0.005)
        return ctx.node_id

    make_adapter([bp], registry={"n": n}, concurrency=8)
    client = make_client([bp])
    handles = [await client.start(bp["id"]) for _ in range(20)]
    done = asyncio.gather(*(h.result(30) for h in handles))
    snapshots = 0
    while not done.done():
        for h in handles:
            view = await run_view(redis_client, h.run_id)
            assert view is not None
            completed = sorted(t.node_id for t in view.tasks if t.status == "completed")
            logged = sorted(e.node_id or "" for e in view.logs if e.type == "node-completed")
            assert completed == logged
            assert (view.status == "completed") == (view.logs[-1].type == "run-completed")
            snapshots += 1
        await asyncio.sleep(0)
    assert all(r.status == "completed" for r in await done)
    assert snapshots > 20


async def test_list_runs_filters_pages_and_drops_expired_runs(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    tag = uuid.uuid4().hex[:6]
    ok_bp = {"id": f"listok-{tag}", "nodes": [{"id": "A", "uses": "a"}], "edges": []}
    bad_bp = {"id": f"listbad-{tag}", "nodes": [{"id": "A", "uses": "bad"}], "edges": []}

    def bad(ctx: NodeContext) -> None:
        raise RuntimeError("no")

    make_adapter([ok_bp, bad_bp], registry={"a": ret("a"), "bad": bad})
    client = make_client([ok_bp, bad_bp])
    ok_runs = [await client.start(ok_bp["id"]) for _ in range(5)]
    bad_runs = [await client.start(bad_bp["id"]) for _ in range(2)]
    for h in [*ok_runs, *bad_runs]:
        await h.result(20)

    runs, _ = await list_runs(redis_client, search=tag, limit=100)
    assert {r.run_id for r in runs} == {h.run_id for h in [*ok_runs, *bad_runs]}
    assert [r.started_at for r in runs] == sorted((r.started_at for r in runs), reverse=True)
    failed, _ = await list_runs(redis_client, status="failed", search=tag)
    assert {r.run_id for r in failed} == {h.run_id for h in bad_runs}
    by_bp, _ = await list_runs(redis_client, blueprint_id=ok_bp["id"])
    assert {r.run_id for r in by_bp} == {h.run_id for h in ok_runs}
    assert all(r.duration_ms is not None and r.finished_at for r in by_bp)
    # pages of 2 cover every run once
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await list_runs(redis_client, search=tag, limit=2, cursor=cursor)
        seen += [r.run_id for r in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.run_id for r in runs)
    # a run whose keys expired leaves the index when it is next listed
    gone = ok_runs[0].run_id
    await redis_client.delete(keys.run_key(gone), keys.state_key(gone), keys.status_key(gone))
    runs, _ = await list_runs(redis_client, search=tag, limit=100)
    assert gone not in {r.run_id for r in runs}
    assert await redis_client.zscore(keys.RUN_INDEX_KEY, gone) is None
    with pytest.raises(ValueError, match="cursor"):
        await list_runs(redis_client, cursor="garbage")
    assert await run_view(redis_client, gone) is None


async def test_metrics_count_nodes_runs_and_latencies(
    make_adapter: Any, make_client: Any, redis_client: Redis
) -> None:
    async def slow(ctx: NodeContext) -> str:
        await asyncio.sleep(0.03)
        return "s"

    def bad(ctx: NodeContext) -> None:
        raise RuntimeError("no")

    tag = uuid.uuid4().hex[:6]
    ok_bp = {
        "id": f"metok-{tag}",
        "nodes": [{"id": "A", "uses": "slow"}, {"id": "B", "uses": "slow"}],
        "edges": [{"source": "A", "target": "B"}],
    }
    bad_bp = {"id": f"metbad-{tag}", "nodes": [{"id": "X", "uses": "bad"}], "edges": []}
    make_adapter([ok_bp, bad_bp], registry={"slow": slow, "bad": bad})
    client = make_client([ok_bp, bad_bp])
    before = await read_metrics(redis_client)
    for _ in range(3):
        assert (await (await client.start(ok_bp["id"])).result(20)).status == "completed"
    assert (await (await client.start(bad_bp["id"])).result(20)).status == "failed"
    after = await read_metrics(redis_client)
    # other tests share the server: compare deltas, at least what this test caused
    assert after.nodes_completed - before.nodes_completed >= 6
    assert after.nodes_failed - before.nodes_failed >= 1
    assert after.runs_finished.get("completed", 0) - before.runs_finished.get("completed", 0) >= 3
    assert after.runs_finished.get("failed", 0) - before.runs_finished.get("failed", 0) >= 1
    for hist in (after.node_latency, after.run_latency):
        assert len(hist.buckets) == len(LATENCY_BUCKETS_MS) + 1
        counts = [c for _, c in hist.buckets]
        assert counts == sorted(counts) and counts[-1] == hist.count
        assert hist.buckets[-1][0] == float("inf")
    # six node executions of >= 30 ms: none of them in the buckets up to 25 ms
    at = {bound: count for bound, count in after.node_latency.buckets}
    was = {bound: count for bound, count in before.node_latency.buckets}
    assert after.node_latency.count - before.node_latency.count >= 7
    assert after.node_latency.sum_seconds - before.node_latency.sum_seconds >= 6 * 0.03
    assert at[0.05] - was[0.05] <= (after.node_latency.count - before.node_latency.count) - 0
    assert after.run_latency.sum_seconds - before.run_latency.sum_seconds >= 3 * 0.06
    assert len(after.per_minute) == 60
    assert sum(c for _, c in after.per_minute) - sum(c for _, c in before.per_minute) >= 7 - 0
    assert after.per_minute[-1][0] - after.per_minute[0][0] == 59 * 60_000
