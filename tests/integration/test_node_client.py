"""A Node client (bullmq + ioredis, ``tests/node/client.mjs``) starts runs on a bullflow worker
process the way Flowcraft's distributed client does (spec §5.6): it writes the initial context
into ``workflow:state:<runId>`` as JSON, ``addBulk``s the start jobs (``executeNode``, data
``{runId, blueprintId, nodeId}``, numeric job ids, no ``blueprintVersion``) and polls
``workflow:status:<runId>``. Then a Node script reads the context hash the way Flowcraft's
``RedisContext.toJSON()`` does (``JSON.parse`` of every field)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from bullflow.analysis import analyze_blueprint

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"


def node_skip_reason() -> str | None:
    """Why the Node tests cannot run here, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed: the Node compatibility tests need Node.js"
    if not (NODE_DIR / "node_modules" / "bullmq" / "package.json").is_file():
        return "tests/node/node_modules is not installed: run make node-deps"
    return None


NODE_SKIP = node_skip_reason()

pytestmark = pytest.mark.skipif(NODE_SKIP is not None, reason=NODE_SKIP or "")


async def run_node_script(
    script: str, *args: str, env: dict[str, str], timeout: float = 30, check: bool = True
) -> str:
    """Runs ``node tests/node/<script> args...`` and returns its stdout."""
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / script),
        *args,
        cwd=NODE_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        proc.kill()
        await proc.wait()
        raise AssertionError(f"node {script} {' '.join(args)} did not finish within {timeout} s") from None
    if check:
        assert proc.returncode == 0, (
            f"node {script} exited {proc.returncode}\nstdout: {out.decode()}\nstderr: {err.decode()}"
        )
    return out.decode()


async def node_client(
    redis_url: str,
    queue: str,
    blueprint: dict[str, Any],
    context: dict[str, Any],
    run_ids: list[str],
    timeout_ms: int = 20_000,
) -> list[dict[str, Any]]:
    """Starts ``run_ids`` with the Node client and returns each run's parsed status (in order).
    The start ids are Flowcraft's ``analysis.startNodeIds`` (fallback-only nodes included)."""
    start_ids = analyze_blueprint(blueprint).start_node_ids
    out = await run_node_script(
        "client.mjs",
        blueprint["id"],
        json.dumps(start_ids),
        json.dumps(context),
        *run_ids,
        env={"REDIS_URL": redis_url, "QUEUE": queue, "TIMEOUT_MS": str(timeout_ms)},
        timeout=timeout_ms / 1000 + 15,
        check=False,
    )
    statuses = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(statuses) == len(run_ids), f"client printed {out!r}"
    return statuses


async def node_read_state(redis_url: str, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``{runId: {context, errors}}``: the context hashes as Node's ``JSON.parse`` reads them."""
    out = await run_node_script("state.mjs", *run_ids, env={"REDIS_URL": redis_url})
    return dict(json.loads(out))


def new_run_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def completed_context(status: dict[str, Any]) -> dict[str, Any]:
    assert status.get("status") == "completed", status
    payload = status.get("payload")
    assert isinstance(payload, dict) and isinstance(payload.get("context"), dict), status
    return dict(payload["context"])


async def assert_state_parses(redis_url: str, run_ids: list[str], contexts: list[dict[str, Any]]) -> None:
    """Every field of each run's state hash is JSON Node can parse, and the hash holds what the
    status payload reported."""
    states = await node_read_state(redis_url, run_ids)
    for run_id, ctx in zip(run_ids, contexts, strict=True):
        state = states[run_id]
        assert state["errors"] == [], f"run {run_id}: fields JSON.parse rejects: {state['errors']}"
        assert state["context"] == ctx


# --------------------------------------------------------------------------------- blueprints
NESTED = {"list": [1, 2.5, None, True, "héllo ✓"], "deep": {"a": {"b": [{}]}}, "empty": ""}

LINEAR: dict[str, Any] = {
    "id": "node-linear",
    "nodes": [
        {"id": "A", "uses": "echo"},
        {"id": "B", "uses": "echo"},
        {"id": "S", "uses": "setter", "params": {"values": {"shared": {"n": 1, "s": "ünïcode"}}}},
    ],
    "edges": [{"source": "A", "target": "B"}, {"source": "B", "target": "S"}],
}


def diamond_with_fallback(log: Path) -> dict[str, Any]:
    """``A -> B, A -> C, B -> J, C -> J`` where ``B`` fails and its ``config.fallback`` ``F`` (a
    node without incoming edges, so in Flowcraft's ``startNodeIds``) stands in for it."""
    return {
        "id": "node-diamond-fallback",
        "nodes": [
            {"id": "A", "uses": "echo"},
            {"id": "B", "uses": "boom", "config": {"fallback": "F"}},
            {"id": "C", "uses": "setter", "params": {"values": {"fromC": True}, "result": "c"}},
            {"id": "F", "uses": "record", "params": {"log": str(log)}},
            {"id": "J", "uses": "record", "params": {"log": str(log)}},
        ],
        "edges": [
            {"source": "A", "target": "B"},
            {"source": "A", "target": "C"},
            {"source": "B", "target": "J"},
            {"source": "C", "target": "J"},
        ],
    }


ROUTER: dict[str, Any] = {
    "id": "node-router",
    "nodes": [
        {"id": "R", "uses": "route", "params": {"actionKey": "choice"}},
        {"id": "L", "uses": "echo", "params": {"value": "left"}},
        {"id": "X", "uses": "echo", "params": {"value": "right"}},
        {"id": "J", "uses": "echo"},
        {"id": "T", "uses": "echo"},
    ],
    "edges": [
        {"source": "R", "target": "L", "action": "left"},
        {"source": "R", "target": "X", "action": "right"},
        {"source": "L", "target": "J"},
        {"source": "X", "target": "J"},
        {"source": "J", "target": "T"},
    ],
}

DIAMOND: dict[str, Any] = {
    "id": "node-diamond",
    "nodes": [
        {"id": "A", "uses": "echo"},
        {"id": "B", "uses": "echo"},
        {"id": "C", "uses": "setter", "params": {"values": {"shared": {"n": 1}}}},
        {"id": "J", "uses": "echo"},
    ],
    "edges": [
        {"source": "A", "target": "B"},
        {"source": "A", "target": "C"},
        {"source": "B", "target": "J"},
        {"source": "C", "target": "J"},
    ],
}


# -------------------------------------------------------------------------------------- tests
async def test_a_node_client_runs_a_linear_chain(
    spawn_worker: Any, redis_server: str, key_prefix: str, redis_client: Any
) -> None:
    spawn_worker([LINEAR])
    run_ids = new_run_ids(1)
    [status] = await node_client(redis_server, key_prefix, LINEAR, {"topic": "x", "nested": NESTED}, run_ids)

    ctx = completed_context(status)
    assert ctx["topic"] == "x" and ctx["nested"] == NESTED
    assert ctx["blueprintId"] == "node-linear"
    assert ctx.get("blueprintVersion") is None  # the Node client wrote none; that is accepted
    assert ctx["_outputs.A"] == "A(None)"
    assert ctx["_outputs.B"] == "B(A(None))"
    assert ctx["_outputs.S"] == "set" and ctx["shared"] == {"n": 1, "s": "ünïcode"}
    # the client's start job has bullmq's numeric id; the ones bullflow enqueued are <runId>_<nodeId>
    queue = f"bull:{key_prefix}:"
    assert (
        await redis_client.hget(queue + "1", "data")
        == json.dumps(
            {"runId": run_ids[0], "blueprintId": "node-linear", "nodeId": "A"}, separators=(",", ":")
        ).encode()
    )
    for node in ("B", "S"):
        assert await redis_client.hget(f"{queue}{run_ids[0]}_{node}", "finishedOn") is not None
    assert await redis_client.zcard(queue + "completed") == 3
    await assert_state_parses(redis_server, run_ids, [ctx])


async def test_a_node_client_runs_a_diamond_whose_fallback_node_is_a_start_id(
    spawn_worker: Any, redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    blueprint = diamond_with_fallback(log)
    assert analyze_blueprint(blueprint).start_node_ids == ["A", "F"]  # what a Flowcraft client enqueues
    spawn_worker([blueprint])
    run_ids = new_run_ids(3)
    statuses = await node_client(redis_server, key_prefix, blueprint, {"topic": "y"}, run_ids)

    contexts = [completed_context(status) for status in statuses]
    for ctx in contexts:
        assert ctx["topic"] == "y" and ctx["fromC"] is True
        assert ctx["_outputs.A"] == "A(None)" and ctx["_outputs.C"] == "c"
        assert ctx["_outputs.B"] is None  # the failed node's output, as Flowcraft records it
        assert ctx["_outputs.F"].startswith("F:")
        assert ctx["_outputs.J"].startswith("J:")
    lines = log.read_text().splitlines()
    for run_id in run_ids:
        # F ran once, as B's stand-in: the client's start job for it ran nothing
        assert lines.count(f"{run_id} F") == 1, lines
        assert lines.count(f"{run_id} J") == 1, lines
    await assert_state_parses(redis_server, run_ids, contexts)


async def test_a_node_client_runs_a_router_whose_exclusive_branches_meet_in_an_all_join(
    spawn_worker: Any, redis_server: str, key_prefix: str
) -> None:
    spawn_worker([ROUTER])
    left, right = new_run_ids(1), new_run_ids(1)
    [left_status], [right_status] = await asyncio.gather(
        node_client(redis_server, key_prefix, ROUTER, {"choice": "left"}, left),
        node_client(redis_server, key_prefix, ROUTER, {"choice": "right"}, right),
    )

    left_ctx = completed_context(left_status)
    assert left_ctx["_outputs.R"] == {"routed": "left", "total": 0}
    assert left_ctx["_outputs.L"] == "left" and "_outputs.X" not in left_ctx
    assert left_ctx["_outputs.J"] == "J(left)" and left_ctx["_outputs.T"] == "T(J(left))"
    right_ctx = completed_context(right_status)
    assert right_ctx["_outputs.X"] == "right" and "_outputs.L" not in right_ctx
    assert right_ctx["_outputs.J"] == "J(right)" and right_ctx["_outputs.T"] == "T(J(right))"
    await assert_state_parses(redis_server, [*left, *right], [left_ctx, right_ctx])


async def test_twenty_concurrent_runs_from_two_node_clients(
    spawn_worker: Any, redis_server: str, key_prefix: str
) -> None:
    spawn_worker([DIAMOND], concurrency=20)
    batches = [new_run_ids(10), new_run_ids(10)]
    results = await asyncio.gather(
        *(
            node_client(redis_server, key_prefix, DIAMOND, {"client": i}, run_ids)
            for i, run_ids in enumerate(batches)
        )
    )

    run_ids: list[str] = []
    contexts: list[dict[str, Any]] = []
    for i, (ids, statuses) in enumerate(zip(batches, results, strict=True)):
        for status in statuses:
            ctx = completed_context(status)
            assert ctx["client"] == i and ctx["shared"] == {"n": 1}
            assert ctx["_outputs.A"] == "A(None)" and ctx["_outputs.B"] == "B(A(None))"
            assert ctx["_outputs.J"] in ("J(B(A(None)))", "J(set)")
            contexts.append(ctx)
        run_ids += ids
    assert len(set(run_ids)) == 20
    await assert_state_parses(redis_server, run_ids, contexts)


async def test_a_start_node_the_client_enqueued_without_attempts_is_still_retried(
    spawn_worker: Any, redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    """The Node client's start jobs carry no ``attempts`` option, so the worker retries a start
    node's ``config.maxRetries`` itself."""
    log = tmp_path / "attempts.log"
    blueprint = {
        "id": "node-flaky-start",
        "nodes": [
            {
                "id": "F",
                "uses": "flaky",
                "params": {"log": str(log), "succeedOn": 2},
                "config": {"maxRetries": 3, "retryDelay": 10},
            },
            {"id": "N", "uses": "echo"},
        ],
        "edges": [{"source": "F", "target": "N"}],
    }
    spawn_worker([blueprint])
    [status] = await node_client(redis_server, key_prefix, blueprint, {}, new_run_ids(1))

    ctx = completed_context(status)
    assert ctx["_outputs.F"] == "ok on attempt 2" and ctx["_outputs.N"] == "N(ok on attempt 2)"
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["1", "2"]


async def test_a_node_client_gets_a_failed_status_for_a_blueprint_the_worker_lacks(
    spawn_worker: Any, redis_server: str, key_prefix: str
) -> None:
    spawn_worker([LINEAR])
    unknown = {**LINEAR, "id": "not-registered"}
    [status] = await node_client(redis_server, key_prefix, unknown, {"topic": "x"}, new_run_ids(1))

    assert status["status"] == "failed"
    assert "not-registered" in status["reason"] and "not found" in status["reason"]
