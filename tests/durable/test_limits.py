"""Limits and validation: the step limit, payload sizes, bad step names and durations, instance
ids (create, create_batch, get, status of an unknown instance) and retention of finished
instances."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow import keys
from bullflow.durable import (
    InstanceExistsError,
    InstanceNotFoundError,
    PayloadTooLargeError,
    StepConfigError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from bullflow.settings import DurableSettings

from .durable_helpers import eventually, wait_status
from .workflows import (
    BadConfig,
    BigOutput,
    CaughtError,
    ManySteps,
    SleepsAndLoops,
    SleepThenWait,
    SleepUntilPast,
    ThreeSteps,
)


async def test_step_limit_fails_the_instance(
    start_workers: Any, workflow: Any, durable_settings: DurableSettings
) -> None:
    settings = dataclasses.replace(durable_settings, step_limit=3)
    await start_workers(workflows=[ManySteps], settings=settings)
    client = workflow(ManySteps, settings=settings)
    within = await client.create(params={"n": 3})
    assert await within.result(timeout=10) == 3
    over = await client.create(params={"n": 5})
    with pytest.raises(WorkflowFailedError) as info:
        await over.result(timeout=10)
    assert info.value.error["name"] == "StepLimitExceededError"
    status = await over.status()
    assert status.status == "errored"
    assert status.step_count == 3  # the fourth step never started


async def test_payload_limits(
    start_workers: Any, workflow: Any, durable_settings: DurableSettings, redis_client: Redis
) -> None:
    settings = dataclasses.replace(durable_settings, max_payload_bytes=2000)
    await start_workers(workflows=[BigOutput, SleepThenWait], settings=settings)
    big = workflow(BigOutput, settings=settings)

    # a step output over the limit fails the instance; one under it is fine
    assert await (await big.create(params={"size": 1000})).result(timeout=10) == 1000
    too_big = await big.create(params={"size": 5000})
    with pytest.raises(WorkflowFailedError) as info:
        await too_big.result(timeout=10)
    assert info.value.error["name"] == "PayloadTooLargeError"

    # params over the limit: refused by the client, nothing created
    with pytest.raises(PayloadTooLargeError):
        await big.create(id="big-params", params={"size": 1, "pad": "x" * 5000})
    with pytest.raises(InstanceNotFoundError):
        await big.get("big-params")

    # an event payload over the limit: refused by the client, nothing buffered
    waiter = await workflow(SleepThenWait, settings=settings).create(params={"sleep": 0.3})
    with pytest.raises(PayloadTooLargeError):
        await waiter.send_event("ping", "x" * 5000)
    assert await redis_client.hget(waiter.keys.events, "ping") is None
    assert await waiter.send_event("ping", "small") is False
    assert await waiter.result(timeout=10) == {"type": "ping", "payload": "small"}


async def test_bad_step_names_and_durations_raise_step_config_error(
    start_workers: Any, workflow: Any
) -> None:
    await start_workers(workflows=[BadConfig])
    out = await (await workflow(BadConfig).create()).result(timeout=10)
    assert out.pop("after") == 1  # the workflow goes on normally afterwards
    assert out == dict.fromkeys(out, "StepConfigError")
    assert len(out) == 12


async def test_sleep_until_in_the_past_raises(start_workers: Any, workflow: Any) -> None:
    await start_workers(workflows=[SleepUntilPast])
    result = await (await workflow(SleepUntilPast).create()).result(timeout=10)
    assert result.startswith("StepConfigError:")
    assert "in the past" in result


async def test_create_with_an_existing_id_raises(start_workers: Any, workflow: Any) -> None:
    await start_workers(workflows=[ThreeSteps])
    client = workflow(ThreeSteps)
    first = await client.create(id="order-1")
    with pytest.raises(InstanceExistsError):
        await client.create(id="order-1")
    assert await first.result(timeout=10) == 3
    with pytest.raises(InstanceExistsError):  # a finished instance still holds its id
        await client.create(id="order-1")
    for bad in ("-starts-with-dash", "a" * 101, "has space", "semi;colon", ""):
        with pytest.raises(StepConfigError):
            await client.create(id=bad)


async def test_create_batch_checks_every_id_first(start_workers: Any, workflow: Any) -> None:
    await start_workers(workflows=[ThreeSteps])
    client = workflow(ThreeSteps)
    with pytest.raises(StepConfigError):
        await client.create_batch([{} for _ in range(101)])

    with pytest.raises(InstanceExistsError):
        await client.create_batch([{"id": "b1"}, {"id": "b2"}, {"id": "b1"}])
    for instance_id in ("b1", "b2"):  # nothing of the batch was created
        with pytest.raises(InstanceNotFoundError):
            await client.get(instance_id)

    await client.create(id="taken")
    with pytest.raises(InstanceExistsError):
        await client.create_batch([{"id": "c1"}, {"id": "taken"}])
    with pytest.raises(InstanceNotFoundError):
        await client.get("c1")

    made = await client.create_batch([{"id": f"ok{i}", "params": {"i": i}} for i in range(3)] + [{}])
    assert len(made) == 4
    assert [await m.result(timeout=10) for m in made] == [3, 3, 3, 3]
    assert (await client.get("ok1")).id == "ok1"


async def test_get_unknown_raises_and_status_of_an_expired_instance_is_unknown(
    start_workers: Any, workflow: Any, durable_settings: DurableSettings
) -> None:
    settings = dataclasses.replace(durable_settings, retention_seconds=1)
    await start_workers(workflows=[ThreeSteps], settings=settings)
    client = workflow(ThreeSteps, settings=settings)
    with pytest.raises(InstanceNotFoundError):
        await client.get("never-created")
    instance = await client.create()
    assert await instance.result(timeout=10) == 3
    # retention 1 s: the finished instance's keys expire, after which it is unknown
    assert await wait_status(instance, "unknown", timeout=4) == "unknown"
    with pytest.raises(InstanceNotFoundError):
        await client.get(instance.id)


async def _leftovers(redis: Redis, instance_id: str) -> list[str]:
    return sorted([k.decode() async for k in redis.scan_iter(match=f"*{instance_id}*", count=1000)])


async def _queue_mentions(redis: Redis, settings: DurableSettings, instance_id: str) -> list[str]:
    """BullMQ sets and lists of the activation queue that still hold one of the instance's jobs."""
    base = keys.queue_key_prefix(settings.queue_name, settings.queue_prefix)
    found = []
    for name in ("delayed", "prioritized", "completed", "failed", "waiting-children"):
        members = await redis.zrange(base + name, 0, -1)
        found += [f"{name}:{m.decode()}" for m in members if m.decode().startswith(f"{instance_id}-")]
    for name in ("wait", "active", "paused"):
        members = await redis.lrange(base + name, 0, -1)
        found += [f"{name}:{m.decode()}" for m in members if m.decode().startswith(f"{instance_id}-")]
    return found


@pytest.mark.parametrize(
    ("flow", "end"),
    [(SleepsAndLoops, "complete"), (CaughtError, "event"), (CaughtError, "terminate")],
    ids=["sleeps", "event-before-timeout", "terminated-while-waiting"],
)
async def test_finished_instance_keeps_only_its_keys_with_the_retention_ttl(
    flow: type[Any],
    end: str,
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    durable_settings: DurableSettings,
    redis_client: Redis,
) -> None:
    await start_workers(workflows=[flow])
    instance = await workflow(flow).create(params={**params, "sleep": 0.3})
    if end == "complete":
        await instance.result(timeout=10)
    else:  # waiting on an event with a 60 s timeout: a wake-up job is scheduled for it
        assert await wait_status(instance, "waiting") == "waiting"
        if end == "event":
            await instance.send_event("go", 1)
            await instance.result(timeout=10)
        else:
            await instance.terminate()
            with pytest.raises(WorkflowTerminatedError):
                await instance.result(timeout=10)
    k = instance.keys
    active = keys.active_index_key(durable_settings.prefix)

    async def settled() -> bool:
        # the runner unindexes the instance and BullMQ removes the job after the final status
        return await redis_client.zscore(active, instance.id) is None and set(
            await _leftovers(redis_client, instance.id)
        ) <= {k.instance, k.steps, k.events, k.log}

    await eventually(settled, timeout=3)
    left = await _leftovers(redis_client, instance.id)
    assert {k.instance, k.steps, k.log} <= set(left), left
    for key in left:
        ttl = await redis_client.ttl(key)
        assert durable_settings.retention_seconds - 5 <= ttl <= durable_settings.retention_seconds, (key, ttl)
    assert await _queue_mentions(redis_client, durable_settings, instance.id) == []
    assert await redis_client.exists(k.lease, k.waiters) == 0
