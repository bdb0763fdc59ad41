"""Spec §5.9 group 8: DAGs of steps (``@step.do(name, depends=[...], join=...)``): a diamond
fan-in, a child failure under each join policy (never hangs), nested fan-in across a real
suspension, and cancellation in the middle of a fan-out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from bullflow.durable import WorkflowTerminatedError

from .workflows import Diamond, FanOut


async def counts(params: dict[str, Any], *names: str) -> dict[str, int]:
    async with aioredis.Redis.from_url(params["redis"]) as client:
        values = await client.mget([f"{params['counter']}:{n}" for n in names])
    return {n: int(v or 0) for n, v in zip(names, values, strict=True)}


async def test_diamond_fan_in_runs_each_step_once(start_workers: Any, workflow: Any, params: Any) -> None:
    await start_workers(workflows=[Diamond])
    instance = await workflow(Diamond).create(params={**params, "seconds": 0.05})
    result = await instance.result(timeout=15)
    assert result == {"d": ["d", [["b", [["a", []]]], ["c", [["a", []]]]]]}
    assert await counts(params, "a", "b", "c", "d") == {"a": 1, "b": 1, "c": 1, "d": 1}


@pytest.mark.parametrize(
    ("join", "fail", "expected", "d_runs"),
    [
        # all_success: one failed dependency skips the join (fail fast) and says which
        ("all_success", ["b"], {"error": "StepSkippedError"}, 0),
        # all_done: the join runs with the error in place of the failed result
        ("all_done", ["b"], {"d": ["d", ["error:b failed", ["c", [["a", []]]]]]}, 1),
        # any_success: one success is enough; the failed one is given as None
        ("any_success", ["b"], {"d": ["d", [None, ["c", [["a", []]]]]]}, 1),
        ("any_success", ["b", "c"], {"error": "StepSkippedError"}, 0),
        # none_failed: a failure skips the join
        ("none_failed", ["c"], {"error": "StepSkippedError"}, 0),
        # the root fails: both children are skipped; none_failed accepts skipped dependencies
        ("none_failed", ["a"], {"d": ["d", [None, None]]}, 1),
        ("all_success", ["a"], {"error": "StepSkippedError"}, 0),
        ("all_done", ["a"], {"d": ["d", ["error:step 'b' skipped", "error:step 'c' skipped"]]}, 1),
    ],
)
async def test_child_failure_under_each_join_policy_never_hangs(
    start_workers: Any,
    workflow: Any,
    params: Any,
    join: str,
    fail: list[str],
    expected: dict[str, Any],
    d_runs: int,
) -> None:
    await start_workers(workflows=[Diamond])
    instance = await workflow(Diamond).create(params={**params, "join": join, "fail": fail})
    result = await instance.result(timeout=15)
    if "error" in expected:
        assert result["error"] == expected["error"]
        failed = [n for n in fail if n != "a"] or ["b", "c"]
        for name in failed:
            assert name in result["message"]
    elif join == "all_done" and fail == ["a"]:
        d = result["d"]
        assert d[0] == "d"
        assert all(
            str(x).startswith("error:step 'b' skipped") or str(x).startswith("error:step 'c' skipped")
            for x in d[1]
        )
    else:
        assert result == expected
    assert (await counts(params, "d"))["d"] == d_runs
    # the steps that did not depend on a failure ran exactly once; failed ones once (no retries)
    ran = await counts(params, "a", "b", "c")
    assert ran["a"] == 1
    for name in ("b", "c"):
        assert ran[name] == (0 if "a" in fail else 1)


async def test_nested_fan_in_replays_from_history_after_a_suspension(
    start_workers: Any, workflow: Any, params: Any
) -> None:
    """The fan-in completes in one activation; restarting the workers and resuming a paused
    instance replays the whole DAG from the history without running a step again."""
    await start_workers(workflows=[Diamond])
    instance = await workflow(Diamond).create(params={**params, "seconds": 0.3})
    await asyncio.sleep(0.2)
    assert await instance.pause() in ("waitingForPause", "paused")
    for _ in range(100):
        if (await instance.status()).status == "paused":
            break
        await asyncio.sleep(0.05)
    assert (await instance.status()).status == "paused"
    before = await counts(params, "a", "b", "c", "d")
    assert before["d"] == 0  # paused at a boundary before the join
    await instance.resume()
    assert (await instance.result(timeout=15))["d"][0] == "d"
    assert await counts(params, "a", "b", "c", "d") == {"a": 1, "b": 1, "c": 1, "d": 1}


async def test_terminate_in_the_middle_of_a_fan_out_cancels_the_running_steps(
    start_workers: Any, workflow: Any, params: Any
) -> None:
    await start_workers(workflows=[FanOut])
    instance = await workflow(FanOut).create(params={**params, "width": 5, "seconds": 2})
    for _ in range(100):
        if (await counts(params, "started"))["started"] == 5:
            break
        await asyncio.sleep(0.05)
    assert (await counts(params, "started"))["started"] == 5
    await instance.terminate()
    with pytest.raises(WorkflowTerminatedError):
        await instance.result(timeout=5)
    await asyncio.sleep(2.3)  # longer than the steps would have taken
    assert (await counts(params, "finished"))["finished"] == 0  # cancelled, not finished
    status = await instance.status()
    assert status.status == "terminated"
    assert status.output is None
