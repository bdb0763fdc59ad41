"""Replay across real suspensions (spec §5.9 groups 1 and 2): per-sleep wake-up times (E1), name +
occurrence step keys (E6), errors re-raised with their own type (E2), the non-determinism check,
deterministic keys under asyncio.gather, nested steps."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow.durable import WorkflowFailedError
from bullflow.settings import DurableSettings

from .durable_helpers import counter, step_records, wait_status
from .workflows import (
    CaughtError,
    CaughtTimeout,
    GatherSameName,
    NestedSteps,
    NonDetOriginal,
    NonDetReconfigured,
    NonDetRenamed,
    SleepsAndLoops,
)

SLEEP = 0.4  # longer than the inline threshold (0.2 s): every sleep suspends the instance


def _ms(entry: Any) -> float:
    return entry.timestamp.timestamp() * 1000


async def test_two_sleeps_and_loop_steps_across_real_suspensions(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[SleepsAndLoops])
    instance = await workflow(SleepsAndLoops).create(params={**params, "sleep": SLEEP})
    # E6: "same" called three times gives 0, 1, 2 (not the first result three times)
    assert await instance.result(timeout=10) == [1, 0, 1, 2]
    assert await counter(redis_client, params, "between") == 1

    log = await instance.logs()
    events = [e.event for e in log]
    # both sleeps really suspended the instance and it was activated again for each
    assert events.count("WORKFLOW_WAITING") >= 2
    activations = int(await redis_client.hget(instance.keys.instance, "activations"))
    assert activations >= 3

    # E1: each sleep lasts its own duration, the second is not skipped
    for name in ("sleep:first#1", "sleep:second#1"):
        start = [e for e in log if e.step == name and e.event == "SLEEP_START"]
        done = [e for e in log if e.step == name and e.event == "SLEEP_COMPLETE"]
        assert len(start) == 1 and len(done) == 1, name
        gap = _ms(done[0]) - _ms(start[0])
        assert SLEEP * 1000 <= gap < SLEEP * 1000 + 600, (name, gap)
    first_done = next(e for e in log if e.step == "sleep:first#1" and e.event == "SLEEP_COMPLETE")
    second_done = next(e for e in log if e.step == "sleep:second#1" and e.event == "SLEEP_COMPLETE")
    assert _ms(second_done) - _ms(first_done) >= SLEEP * 1000

    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    # every sleep stored its own wake-up time, SLEEP after its own start
    for name in ("sleep:first#1", "sleep:second#1"):
        assert records[name]["s"] == "ok"
        assert records[name]["w"] - records[name]["t0"] == int(SLEEP * 1000)
    assert records["sleep:second#1"]["w"] >= records["sleep:first#1"]["w"] + int(SLEEP * 1000)
    assert {k: r["v"] for k, r in records.items() if k.startswith("do:same")} == {
        "do:same#1": 0,
        "do:same#2": 1,
        "do:same#3": 2,
    }


async def test_caught_step_error_is_raised_again_with_its_type_after_suspension(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[CaughtError])
    instance = await workflow(CaughtError).create(params=params)
    assert await wait_status(instance, "waiting") == "waiting"
    assert await counter(redis_client, params, "fail") == 1
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["do:fail#1"]["s"] == "err"
    assert records["do:fail#1"]["e"]["name"] == "CustomError"

    assert await instance.send_event("go", {"n": 7}) is True
    # E2: the replay raised CustomError again (not a generic error, not a returned dict) and the
    # workflow's `except CustomError` caught it a second time
    assert await instance.result(timeout=10) == {"caught": "caught:CustomError:boom", "event": {"n": 7}}
    assert await counter(redis_client, params, "fail") == 1
    assert int(await redis_client.hget(instance.keys.instance, "activations")) >= 2


async def test_library_error_with_its_own_arguments_is_raised_again_with_its_type(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    await start_workers(workflows=[CaughtTimeout])
    instance = await workflow(CaughtTimeout).create(params=params)
    assert await wait_status(instance, "waiting") == "waiting"
    await instance.send_event("go")
    # the replay rebuilt StepTimeoutError(step, timeout), so `except StepTimeoutError` caught it
    assert await instance.result(timeout=10) == "StepTimeoutError:hang:0.1"
    assert await counter(redis_client, params, "hang") == 1


@pytest.mark.parametrize("changed", [NonDetRenamed, NonDetReconfigured], ids=["other-name", "other-config"])
async def test_changed_code_fails_the_instance_with_non_determinism(
    start_workers: Any, workflow: Any, changed: type[Any], redis_client: Redis
) -> None:
    assert changed.name == NonDetOriginal.name
    old_workers = await start_workers(workflows=[NonDetOriginal])
    instance = await workflow(NonDetOriginal).create()
    assert await wait_status(instance, "waiting") == "waiting"
    await old_workers.close()

    # a deployment of the same workflow name whose run() reaches other steps
    await start_workers(workflows=[changed])
    await instance.send_event("go")
    with pytest.raises(WorkflowFailedError) as info:
        await instance.result(timeout=10)
    assert info.value.error["name"] == "NonDeterminismError"
    status = await instance.status()
    assert status.status == "errored"
    assert status.error is not None and status.error["name"] == "NonDeterminismError"
    # the changed code's steps never ran: only the original's first step is in the history
    steps = await redis_client.hkeys(instance.keys.steps)
    assert sorted(k.decode() for k in steps) == ["do:a#1", "wait:go#1"]


async def test_gather_of_one_step_name_gets_keys_in_call_order(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[GatherSameName])
    instance = await workflow(GatherSameName).create(params={**params, "sleep": 0.3})
    # the steps finish in reverse order (2, 1, 0) but each keeps the occurrence it was called with,
    # and the replay after the sleep's suspension gets the same values back
    assert await instance.result(timeout=10) == [0, 1, 2]
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert {k: r["v"] for k, r in records.items() if k.startswith("do:x#")} == {
        "do:x#1": 0,
        "do:x#2": 1,
        "do:x#3": 2,
    }
    assert records["do:x#1"]["t1"] >= records["do:x#3"]["t1"]
    for i in range(3):
        assert await counter(redis_client, params, f"x{i}") == 1
    assert int(await redis_client.hget(instance.keys.instance, "activations")) >= 2


async def test_nested_steps_replay_from_the_history(
    start_workers: Any,
    workflow: Any,
    params: dict[str, Any],
    redis_client: Redis,
    durable_settings: DurableSettings,
) -> None:
    await start_workers(workflows=[NestedSteps])
    # the outer step's retry waits 0.4 s (suspended), and a sleep after it suspends again
    instance = await workflow(NestedSteps).create(params={**params, "delay": 0.4, "sleep": 0.3})
    assert await instance.result(timeout=10) == [10, 20, 2]
    assert await counter(redis_client, params, "outer") == 2
    # the inner steps ran once: the outer step's second attempt took them from the history
    assert await counter(redis_client, params, "inner1") == 1
    assert await counter(redis_client, params, "inner2") == 1
    records = await step_records(redis_client, instance.id, durable_settings.prefix)
    assert records["do:outer#1"]["s"] == "ok" and records["do:outer#1"]["a"] == 2
    assert records["do:outer#1/do:inner#1"]["v"] == 10
    assert records["do:outer#1/do:inner#2"]["v"] == 20
    assert int(await redis_client.hget(instance.keys.instance, "activations")) >= 3
