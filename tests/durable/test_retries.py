"""Step retries (spec §5.9 group 5): exponential backoff starts at the base delay (E5), a long
backoff suspends the instance and frees the worker slot, NonRetryableError, attempt timeouts,
StepContext.attempt, retries limit 0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow.durable import WorkflowFailedError
from bullflow.settings import DurableSettings

from .durable_helpers import counter, eventually, recorded, step_records, wait_status
from .workflows import AttemptNumbers, Backoff, LongBackoff, NonRetryable, StepTimeout, ThreeSteps

SLACK = 0.35  # scheduling / wake-up overhead allowed on top of a delay


def _attempt_times(values: list[str]) -> dict[int, float]:
    return {int(a): float(t) for a, t in (v.split(":", 1) for v in values)}


async def test_exponential_backoff_waits_base_then_twice_base(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    base = 0.15  # first retry inline (< 0.2 s threshold), second one suspends (0.3 s)
    await start_workers(workflows=[Backoff])
    instance = await workflow(Backoff).create(params={**params, "limit": 2, "delay": base})
    assert await instance.result(timeout=10) == "gave up: attempt 3 failed"
    assert await counter(redis_client, params, "attempts") == 3
    times = _attempt_times(await recorded(redis_client, params, "times"))
    assert sorted(times) == [1, 2, 3]
    gap1, gap2 = times[2] - times[1], times[3] - times[2]
    # E5: the first retry waits `base` (the defect waited 2*base), the second 2*base
    assert base <= gap1 < 2 * base, gap1
    assert 2 * base <= gap2 < 2 * base + SLACK, gap2


async def test_long_backoff_suspends_and_frees_the_worker_slot(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    delay = 1.5
    await start_workers(workflows=[LongBackoff, ThreeSteps], concurrency=1)
    backing_off = await workflow(LongBackoff).create(params={**params, "delay": delay})

    async def first_attempt_done() -> bool:
        return len(await recorded(redis_client, params, "times")) == 1

    await eventually(first_attempt_done)
    assert await wait_status(backing_off, "waiting") == "waiting"
    # the only worker slot is free: another instance runs to completion during the backoff
    other = await workflow(ThreeSteps).create()
    assert await other.result(timeout=delay - 0.3) == 3
    assert (await backing_off.status()).status == "waiting"

    assert await backing_off.result(timeout=5) == 2
    times = _attempt_times(await recorded(redis_client, params, "times"))
    assert delay <= times[2] - times[1] < delay + SLACK


async def test_non_retryable_error_stops_after_one_attempt(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[NonRetryable])
    instance = await workflow(NonRetryable).create(params=params)
    with pytest.raises(WorkflowFailedError) as info:
        await instance.result(timeout=10)
    assert info.value.error["name"] == "NonRetryableError"
    assert info.value.error["message"] == "stop now"
    assert await counter(redis_client, params, "nonretryable") == 1
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["do:fail#1"]["s"] == "err"
    assert records["do:fail#1"]["a"] == 1


async def test_step_timeout_is_a_failed_attempt_and_cancels_the_coroutine(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[StepTimeout])
    instance = await workflow(StepTimeout).create(
        params={**params, "hang_attempts": 1, "timeout": 0.2, "limit": 2}
    )
    # attempt 1 times out (cancelled), attempt 2 returns
    assert await instance.result(timeout=10) == 2
    assert await counter(redis_client, params, "started") == 2
    assert await counter(redis_client, params, "cancelled") == 1
    assert await counter(redis_client, params, "finished") == 0
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["do:slow#1"]["s"] == "ok" and records["do:slow#1"]["a"] == 2
    failures = [e for e in await instance.logs() if e.event == "ATTEMPT_FAILURE"]
    assert len(failures) == 1 and "StepTimeoutError" in failures[0].detail


async def test_step_timeout_on_every_attempt_fails_the_step_with_step_timeout_error(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    await start_workers(workflows=[StepTimeout])
    instance = await workflow(StepTimeout).create(
        params={**params, "hang_attempts": 9, "timeout": 0.15, "limit": 1}
    )
    assert await instance.result(timeout=10) == "failed:StepTimeoutError"
    assert await counter(redis_client, params, "started") == 2
    assert await counter(redis_client, params, "cancelled") == 2
    await asyncio.sleep(0.1)
    assert await counter(redis_client, params, "finished") == 0


async def test_step_context_attempt_counts_from_one(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    await start_workers(workflows=[AttemptNumbers])
    instance = await workflow(AttemptNumbers).create(params={**params, "succeed_at": 3, "limit": 5})
    assert await instance.result(timeout=10) == 3
    assert await recorded(redis_client, params, "contexts") == [
        f"{n}|counted|{instance.id}" for n in (1, 2, 3)
    ]


async def test_retries_limit_zero_makes_one_attempt(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[AttemptNumbers])
    instance = await workflow(AttemptNumbers).create(params={**params, "succeed_at": 2, "limit": 0})
    with pytest.raises(WorkflowFailedError) as info:
        await instance.result(timeout=10)
    assert info.value.error["name"] == "CustomError"
    assert info.value.error["message"] == "attempt 1"
    assert await recorded(redis_client, params, "contexts") == [f"1|counted|{instance.id}"]
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["do:counted#1"]["s"] == "err" and records["do:counted#1"]["a"] == 1
