"""Spec §5.9 groups 4 and 7: pause / resume (E4, E7, timers offset by the paused time),
terminate (epoch fence, cancelled step), restart (history and attempt state cleared), and the
operations a finished instance refuses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from bullflow.durable import InstanceStatusError, WorkflowTerminatedError
from bullflow.scripts import ScriptCode

from .durable_helpers import counter, eventually, status_is
from .workflows import Cancellable, FlakyStep, SleepThenStep, SlowSteps, ThreeSteps, WaitThenSideEffect


async def record(redis: Redis, client: Any, instance_id: str, key: str) -> dict[str, Any] | None:
    raw = await redis.hget(client.store.keys(instance_id).steps, key)
    return orjson.loads(raw) if raw is not None else None


async def test_pause_evicted_send_event_resume_completes(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """E4: the instance suspends waiting for an event (no runner holds it), is paused, gets its
    event while paused, and resumes through a new activation job id, never the instance id nor
    the still-delayed wake-up job's id."""
    workers = await start_workers(workflows=[WaitThenSideEffect])
    client = workflow(WaitThenSideEffect)
    instance = await client.create(params={**params, "timeout": 60, "side_seconds": 0})
    k = client.store.keys(instance.id)
    await eventually(lambda: status_is(instance, "waiting"))
    assert not await redis_client.exists(k.lease)  # evicted: no runner holds it
    assert await instance.pause() == "paused"
    assert await instance.pause() == "paused"  # idempotent
    assert await instance.send_event("approve", "yes") is True  # delivered into the step record
    await asyncio.sleep(0.5)
    assert (await instance.status()).status == "paused"
    assert await counter(redis_client, params, "side") == 0
    rec = await record(redis_client, client, instance.id, "wait:approval#1")
    assert rec is not None and rec["s"] == "ok"
    await workers.close()  # look at the resume's job before anybody takes it

    assert await instance.resume() == "queued"
    seq = int(await redis_client.hget(k.instance, "seq"))
    jobs = await client.store.queue.getJobs(["waiting", "prioritized", "delayed"])
    mine = {job.id for job in jobs if job.data.get("instanceId") == instance.id}
    assert instance.id not in mine
    resume_job = f"{instance.id}-r{seq}"
    assert resume_job in mine
    delayed = {job.id for job in await client.store.queue.getJobs(["delayed"])}
    assert resume_job not in delayed  # runs now, not with the 60 s timeout's wake-up
    assert any(
        job_id.startswith(f"{instance.id}-r") for job_id in delayed
    )  # the timeout's job is still there

    await start_workers(workflows=[WaitThenSideEffect])
    assert await instance.result(timeout=10) == {"approved": "yes", "n": 1}
    assert await counter(redis_client, params, "side") == 1
    events = [e.event for e in await instance.logs()]
    assert (
        events.index("WORKFLOW_PAUSED") < events.index("WORKFLOW_RESUMED") < events.index("WORKFLOW_SUCCESS")
    )


async def test_pause_while_running_halts_at_next_step_boundary(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """E7: pause during step s0 -> waitingForPause; s0 finishes, s1 does NOT start, status
    paused; resume runs s1 and completes."""
    await start_workers(workflows=[SlowSteps])
    client = workflow(SlowSteps)
    instance = await client.create(params={**params, "steps": 2, "seconds": 0.6})
    await eventually(lambda: counter(redis_client, params, "s0"))
    assert await instance.pause() == "waitingForPause"
    assert (await instance.status()).status == "waitingForPause"
    assert await instance.pause() == "waitingForPause"
    await eventually(lambda: status_is(instance, "paused"), timeout=5)
    rec = await record(redis_client, client, instance.id, "do:s0#1")
    assert rec is not None and rec["s"] == "ok"  # the running step finished and committed
    await asyncio.sleep(0.8)  # s1 would have started and finished by now
    assert await counter(redis_client, params, "s1") == 0
    assert await record(redis_client, client, instance.id, "do:s1#1") is None
    assert (await instance.status()).status == "paused"
    assert not await redis_client.exists(client.store.keys(instance.id).lease)

    assert await instance.resume() == "queued"
    assert await instance.result(timeout=10) == [0, 1]
    assert await counter(redis_client, params, "s0") == 1
    assert await counter(redis_client, params, "s1") == 1


async def test_resume_shifts_pending_timers_by_paused_time(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """A 1 s sleep paused for ~1 s: its wake-up moves later by the paused time, and the step
    after it runs about 2 s after the start, not 1 s."""
    await start_workers(workflows=[SleepThenStep])
    client = workflow(SleepThenStep)
    started = time.time()
    instance = await client.create(params={**params, "sleep": 1.0})
    await eventually(lambda: status_is(instance, "waiting"))
    before = await record(redis_client, client, instance.id, "sleep:nap#1")
    assert before is not None and before["s"] == "pending"
    assert await instance.pause() == "paused"
    paused_at = time.monotonic()
    await asyncio.sleep(1.0)
    assert await instance.resume() == "queued"
    paused_for_ms = (time.monotonic() - paused_at) * 1000
    after = await record(redis_client, client, instance.id, "sleep:nap#1")
    assert after is not None and after["s"] == "pending"
    shift = after["w"] - before["w"]
    assert paused_for_ms - 150 <= shift <= paused_for_ms + 150
    ran_at = await instance.result(timeout=10)
    assert ran_at - started >= 1.9
    assert ran_at - started < 3.5
    assert await counter(redis_client, params, "after") == 1
    step = await record(redis_client, client, instance.id, "do:after#1")
    assert step is not None and step["t0"] >= after["w"]
    slept = await record(redis_client, client, instance.id, "sleep:nap#1")
    assert slept is not None and slept["s"] == "ok" and slept["w"] == after["w"]


async def test_terminate_during_running_step_fences_and_cancels(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    """Terminate mid-step: status terminated, result() raises, the step coroutine is cancelled
    (cancel channel), its record never becomes ok, and a commit with the old lease token is
    refused (FENCED)."""
    await start_workers(workflows=[Cancellable])
    client = workflow(Cancellable)
    instance = await client.create(params={**params, "seconds": 1.5})
    k = client.store.keys(instance.id)
    await eventually(lambda: counter(redis_client, params, "started"))
    token = (await redis_client.get(k.lease)).decode()
    await instance.terminate()
    assert (await instance.status()).status == "terminated"
    with pytest.raises(WorkflowTerminatedError):
        await instance.result(timeout=5)
    await eventually(lambda: counter(redis_client, params, "cancelled"), timeout=5)
    await asyncio.sleep(1.8)  # past the step's own end
    assert await counter(redis_client, params, "finished") == 0
    rec = await record(redis_client, client, instance.id, "do:long#1")
    assert rec is not None and rec["s"] != "ok"
    # the late commit of the old runner: refused by the epoch / lease fence
    late = '{"s":"ok","k":"do","a":1,"v":"late"}'
    reply = await client.store.run(
        "commitStep",
        [k.instance, k.lease, k.steps, k.events, k.waiters, k.log],
        [token, "final", "do:long#1", late, "STEP_SUCCESS", "1", "", ""],
    )
    assert int(reply[0]) == ScriptCode.FENCED
    assert (
        int(await client.store.run("renewLease", [k.instance, k.lease], [token, 2000])) == ScriptCode.FENCED
    )
    rec = await record(redis_client, client, instance.id, "do:long#1")
    assert rec is not None and rec["s"] != "ok"
    status = await instance.status()
    assert status.status == "terminated" and status.output is None
    events = [e.event for e in await instance.logs()]
    assert "STEP_SUCCESS" not in events and "WORKFLOW_SUCCESS" not in events
    assert events[-1] == "WORKFLOW_TERMINATED"
    with pytest.raises(InstanceStatusError):
        await instance.terminate()  # terminated is final too


async def test_restart_clears_attempt_state_and_runs_from_the_top(
    start_workers: Any, workflow: Any, params: dict[str, Any], redis_client: Redis
) -> None:
    await start_workers(workflows=[FlakyStep])
    client = workflow(FlakyStep)
    await redis_client.set(f"{params['counter']}:fail", 1)
    instance = await client.create(params={**params, "delay": 0.4})
    attempts_key = f"{params['counter']}:attempts"
    await eventually(lambda: _at_least(redis_client.llen(attempts_key), 2), timeout=10)
    before = await record(redis_client, client, instance.id, "do:flaky#1")
    assert before is not None and before["s"] == "pending" and before["a"] >= 2
    await redis_client.delete(f"{params['counter']}:fail")
    seen_before = await redis_client.llen(attempts_key)
    await instance.restart()
    assert await instance.result(timeout=10) == 1  # the step's first attempt after the restart
    attempts = [int(a) for a in await redis_client.lrange(attempts_key, 0, -1)]
    assert attempts[:2] == [1, 2]
    assert attempts[seen_before:][-1] == 1
    # the attempt that succeeded is number 1 (a stale attempt of the old epoch may have begun
    # before the restart landed, but none of the new epoch counts on from it)
    after = await record(redis_client, client, instance.id, "do:flaky#1")
    assert after is not None and after["s"] == "ok" and after["a"] == 1 and "le" not in after
    assert await counter(redis_client, params, "head") == 2  # ran again from the top
    head = await record(redis_client, client, instance.id, "do:head#1")
    assert head is not None and head["a"] == 1
    events = [e.event for e in await instance.logs()]
    restarted = events.index("WORKFLOW_RESTARTED")
    assert "ATTEMPT_FAILURE" in events[:restarted]
    assert "ATTEMPT_FAILURE" not in events[restarted:] and "ATTEMPT_START" not in events[restarted:]


async def _at_least(value: Awaitable[int], n: int) -> bool:
    return await value >= n


async def test_finished_instance_refuses_terminate_pause_resume(
    start_workers: Any, workflow: Any, params: dict[str, Any]
) -> None:
    await start_workers(workflows=[ThreeSteps])
    client = workflow(ThreeSteps)
    instance = await client.create(params=params)
    assert await instance.result(timeout=10) == 3
    with pytest.raises(InstanceStatusError) as terminated:
        await instance.terminate()
    assert terminated.value.args and "complete" in str(terminated.value)
    with pytest.raises(InstanceStatusError):
        await instance.pause()
    with pytest.raises(InstanceStatusError):
        await instance.resume()
    assert (await instance.status()).status == "complete"
    assert await instance.result(timeout=1) == 3
