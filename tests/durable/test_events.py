"""Events (spec §5.9 group 6): an event sent before its wait is buffered, one event resolves one
waiter, a timeout racing an event has exactly one outcome that replays stay with, events to a
finished instance are refused, an uncaught wait timeout fails the instance."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from bullflow.durable import InstanceStatusError, WorkflowFailedError
from bullflow.settings import DurableSettings

from .durable_helpers import eventually, step_records, wait_status
from .workflows import SleepThenWait, ThreeSteps, TimeoutRace, Waiters, WaitUncaught


async def test_event_sent_before_the_wait_is_buffered_and_delivered(
    start_workers: Any, workflow: Any, redis_client: Redis, durable_settings: DurableSettings
) -> None:
    await start_workers(workflows=[SleepThenWait])
    instance = await workflow(SleepThenWait).create(params={"sleep": 0.4})
    assert await wait_status(instance, "waiting") == "waiting"  # in the sleep, no wait yet
    assert await instance.send_event("ping", {"early": True}) is False  # no waiter: buffered
    buffered = await redis_client.hget(instance.keys.events, "ping")
    assert buffered is not None
    assert [orjson.loads(e)["payload"] for e in orjson.loads(buffered)] == [{"early": True}]

    assert await instance.result(timeout=10) == {"type": "ping", "payload": {"early": True}}
    assert await redis_client.hget(instance.keys.events, "ping") is None  # consumed
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["wait:w#1"]["s"] == "ok"


async def test_one_event_resolves_exactly_one_of_two_waiters(
    start_workers: Any, workflow: Any, redis_client: Redis, durable_settings: DurableSettings
) -> None:
    await start_workers(workflows=[Waiters])
    instance = await workflow(Waiters).create()

    async def both_waiting() -> bool:
        text = await redis_client.hget(instance.keys.waiters, "item")
        return text is not None and len(orjson.loads(text)) == 2

    await eventually(both_waiting)
    assert await wait_status(instance, "waiting") == "waiting"
    assert await instance.send_event("item", "first") is True

    async def one_resolved() -> dict[str, Any] | None:
        records = await step_records(redis_client, instance.id, durable_settings.prefix)
        states = sorted(records[k]["s"] for k in ("wait:w1#1", "wait:w2#1"))
        return records if states == ["ok", "pending"] else None

    records = await eventually(one_resolved)
    resolved = next(k for k in ("wait:w1#1", "wait:w2#1") if records[k]["s"] == "ok")
    assert records[resolved]["v"]["payload"] == "first"
    # the other one keeps waiting: the instance replays, then suspends again
    await asyncio.sleep(0.3)
    assert await wait_status(instance, "waiting") == "waiting"
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert sorted(records[k]["s"] for k in ("wait:w1#1", "wait:w2#1")) == ["ok", "pending"]
    assert len(orjson.loads(await redis_client.hget(instance.keys.waiters, "item"))) == 1
    assert await redis_client.hget(instance.keys.events, "item") is None  # nothing left over

    assert await instance.send_event("item", "second") is True
    assert await instance.result(timeout=10) == ["first", "second"]


@pytest.mark.parametrize("send_after", [0.25, 0.35, 0.5])
async def test_timeout_racing_an_event_has_one_stable_outcome(
    send_after: float,
    start_workers: Any,
    workflow: Any,
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[TimeoutRace])
    # the wait times out after 0.3 s; the event is sent about then; a 0.4 s sleep afterwards
    # suspends the instance once more, so the outcome is replayed from the history
    instance = await workflow(TimeoutRace).create(params={"timeout": 0.3, "after": 0.4})

    async def wait_started() -> bool:
        records = await step_records(redis_client, instance.id, durable_settings.prefix)
        return "wait:w#1" in records

    await eventually(wait_started, every=0.005)
    await asyncio.sleep(send_after - 0.01)
    delivered = await instance.send_event("ping", "pong")
    result = await instance.result(timeout=10)

    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    record = records["wait:w#1"]
    if delivered:
        assert result == "event:pong"
        assert record["s"] == "ok" and record["v"]["payload"] == "pong"
    else:
        assert result == "timeout:WaitTimeoutError"
        assert record["s"] == "err" and record["e"]["name"] == "WaitTimeoutError"
    # the step was finalised once: one completion or one timeout in the log, never both
    finals = [
        e.event
        for e in await instance.logs()
        if e.step == "wait:w#1" and e.event in ("WAIT_COMPLETE", "WAIT_TIMEOUT")
    ]
    assert finals == (["WAIT_COMPLETE"] if delivered else ["WAIT_TIMEOUT"])
    assert records["sleep:after#1"]["s"] == "ok"
    assert int(await redis_client.hget(instance.keys.instance, "activations")) >= 2


async def test_send_event_to_a_finished_instance_raises(start_workers: Any, workflow: Any) -> None:
    await start_workers(workflows=[ThreeSteps])
    instance = await workflow(ThreeSteps).create()
    assert await instance.result(timeout=10) == 3
    with pytest.raises(InstanceStatusError) as info:
        await instance.send_event("late", 1)
    assert info.value.status == "complete"


async def test_uncaught_wait_timeout_fails_the_instance_with_wait_timeout_error(
    start_workers: Any, workflow: Any, redis_client: Redis, durable_settings: DurableSettings
) -> None:
    await start_workers(workflows=[WaitUncaught])
    instance = await workflow(WaitUncaught).create(params={"timeout": 0.3})
    with pytest.raises(WorkflowFailedError) as info:
        await instance.result(timeout=10)
    assert info.value.error["name"] == "WaitTimeoutError"
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["wait:w#1"]["s"] == "err"
    assert records["wait:w#1"]["t1"] - records["wait:w#1"]["t0"] >= 300
