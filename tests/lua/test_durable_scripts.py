"""Black-box tests of the durable instance scripts against the real server: the commit rule
(lease token + epoch + status), first-writer-wins step records, one runner per instance, event
buffering and delivery, pause boundaries, timer shifting on resume, fencing by terminate and
restart, and the reconciler's compare-and-set."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from bullflow import keys
from bullflow.scripts import ScriptCode, ScriptRunner


class Instance:
    def __init__(self, runner: ScriptRunner, prefix: str, instance_id: str = "i1") -> None:
        self.run = runner.run
        self.redis = runner.redis
        self.id = instance_id
        self.k = keys.instance_keys(instance_id, prefix)
        self.six = [self.k.instance, self.k.lease, self.k.steps, self.k.events, self.k.waiters, self.k.log]

    async def create(self) -> list[Any]:
        return list(await self.run("createInstance", [self.k.instance, self.k.log], ["wf", "1", "{}", 60]))

    async def activate(self, runner_id: str = "r1") -> list[Any]:
        return list(
            await self.run(
                "activateInstance",
                [self.k.instance, self.k.lease, self.k.steps, self.k.log],
                [runner_id, 5000],
            )
        )

    async def commit(
        self, token: str, op: str, key: str, record: str, arg7: str = "", arg8: str = ""
    ) -> list[Any]:
        return list(await self.run("commitStep", self.six, [token, op, key, record, "", "", arg7, arg8]))

    async def field(self, name: str) -> str | None:
        value = await self.redis.hget(self.k.instance, name)
        return None if value is None else value.decode()


@pytest.fixture
def instance(redis_client: Redis, key_prefix: str) -> Instance:
    return Instance(ScriptRunner(redis_client), key_prefix)


PENDING = '{"s":"pending","k":"do","a":1,"r":1}'
OK = '{"s":"ok","k":"do","a":1,"v":42}'


async def test_create_is_atomic_and_refuses_an_existing_id(instance: Instance) -> None:
    assert (await instance.create())[:2] == [1, 1]
    assert (await instance.create())[0] == ScriptCode.ALREADY_PRESENT
    assert await instance.field("status") == "queued"
    assert await instance.field("epoch") == "1"


async def test_one_runner_at_a_time_and_the_second_marks_the_instance_pending(instance: Instance) -> None:
    await instance.create()
    first = await instance.activate("r1")
    assert first[0] == ScriptCode.STORED
    assert first[1].decode() == "1:r1"
    assert await instance.field("status") == "running"
    second = await instance.activate("r2")
    assert second[0] == ScriptCode.LEASE_HELD and 0 < second[1] <= 5000
    assert await instance.field("pending") == "1"
    # the holder's suspension sees the mark and replays instead of letting go
    assert (
        await instance.run(
            "suspendInstance", [instance.k.instance, instance.k.lease, instance.k.log], ["1:r1", ""]
        )
    )[0] == ScriptCode.CONTINUE
    assert await instance.field("pending") == "0"


async def test_commits_are_fenced_and_final_records_are_written_once(instance: Instance) -> None:
    await instance.create()
    token = (await instance.activate())[1].decode()
    assert (await instance.commit("1:someone-else", "put", "do:a#1", PENDING))[0] == ScriptCode.FENCED
    assert (await instance.commit(token, "put", "do:a#1", PENDING, "start", "1"))[0] == ScriptCode.STORED
    assert await instance.field("step_count") == "1"
    assert (await instance.commit(token, "final", "do:a#1", OK))[0] == ScriptCode.STORED
    again = await instance.commit(token, "final", "do:a#1", '{"s":"err","k":"do"}')
    assert again[0] == ScriptCode.ALREADY_PRESENT
    assert again[1].decode() == OK
    assert (await instance.redis.hget(instance.k.steps, "do:a#1")).decode() == OK


async def test_terminate_advances_the_epoch_and_fences_the_runner(instance: Instance) -> None:
    await instance.create()
    token = (await instance.activate())[1].decode()
    reply = await instance.run("terminateInstance", instance.six, [instance.k.done, "cancel", instance.id])
    assert list(reply) == [ScriptCode.STORED, None]  # no wake-up job was scheduled
    assert await instance.field("status") == "terminated"
    assert await instance.field("epoch") == "2"
    assert (await instance.commit(token, "final", "do:a#1", OK))[0] == ScriptCode.FENCED
    renew = await instance.run("renewLease", [instance.k.instance, instance.k.lease], [token, 5000])
    assert renew == ScriptCode.FENCED
    finish = await instance.run("finishInstance", instance.six, [token, "complete", "1", instance.k.done])
    assert list(finish) == [ScriptCode.FENCED]
    assert await instance.field("status") == "terminated"
    again = await instance.run("terminateInstance", instance.six, [instance.k.done, "cancel", instance.id])
    assert list(again) == [ScriptCode.WRONG_STATUS]
    ttl = await instance.redis.ttl(instance.k.instance)
    assert 0 < ttl <= 60


async def test_finish_reports_the_wake_up_job_to_remove(instance: Instance) -> None:
    await instance.create()
    token = (await instance.activate())[1].decode()
    three = [instance.k.instance, instance.k.lease, instance.k.log]
    suspended = await instance.run("suspendInstance", three, [token, "99999999999999"])
    assert suspended[2] == 2
    await instance.redis.hset(instance.k.instance, "pending", 1)
    token = (await instance.activate("r2"))[1].decode()
    finish = await instance.run("finishInstance", instance.six, [token, "complete", "7", instance.k.done])
    assert list(finish) == [ScriptCode.STORED, b"2"]
    assert await instance.field("wake_seq") is None
    assert await instance.field("output") == "7"


async def test_restart_clears_history_and_fences_the_old_runner(instance: Instance) -> None:
    await instance.create()
    token = (await instance.activate())[1].decode()
    await instance.commit(token, "put", "do:a#1", PENDING, "start", "1")
    reply = await instance.run("restartInstance", instance.six, ["cancel", instance.id])
    assert list(reply) == [1, 2]
    assert await instance.redis.exists(instance.k.steps, instance.k.lease) == 0
    assert (
        await instance.field("status"),
        await instance.field("step_count"),
        await instance.field("epoch"),
    ) == (
        "queued",
        "0",
        "2",
    )
    assert (await instance.commit(token, "final", "do:a#1", OK))[0] == ScriptCode.FENCED
    assert (await instance.activate("r2"))[1].decode() == "2:r2"


async def test_events_are_buffered_and_each_resolves_one_waiter(instance: Instance) -> None:
    await instance.create()
    event = '{"type":"go","timestamp":1,"payload":"first"}'
    reply = await instance.run("sendEvent", instance.six, ["go", event])
    assert reply[0] == ScriptCode.STORED and reply[1] is None and reply[2] is None  # buffered
    token = (await instance.activate())[1].decode()
    wait = '{"s":"pending","k":"wait","ev":"go","w":99999999999999}'
    prefix = '{"s":"ok","k":"wait","ev":"go","w":99999999999999,"v":'
    got = await instance.commit(token, "wait", "wait:a#1", wait, "go", prefix)
    record = orjson.loads(got[1])
    assert record["s"] == "ok" and record["v"]["payload"] == "first"
    # two waiters, one event: the oldest waiter takes it, the other still waits
    await instance.commit(token, "wait", "wait:b#1", wait, "go", prefix)
    await instance.commit(token, "wait", "wait:c#1", wait, "go", prefix)
    reply = await instance.run("sendEvent", instance.six, ["go", event.replace("first", "second")])
    assert reply[1].decode() == "wait:b#1"
    assert await instance.field("pending") == "1"  # the runner holds the lease: it replays again
    assert orjson.loads(await instance.redis.hget(instance.k.steps, "wait:c#1"))["s"] == "pending"
    assert orjson.loads(await instance.redis.hget(instance.k.waiters, "go")) == ["wait:c#1"]
    # a timeout after a delivery changes nothing; a timeout of a pending wait wins once
    late = await instance.commit(token, "timeout", "wait:b#1", '{"s":"err","k":"wait"}', "go")
    assert late[0] == ScriptCode.ALREADY_PRESENT
    timed_out = await instance.commit(token, "timeout", "wait:c#1", '{"s":"err","k":"wait"}', "go")
    assert timed_out[0] == ScriptCode.STORED
    assert await instance.redis.hget(instance.k.waiters, "go") is None
    reply = await instance.run("sendEvent", instance.six, ["go", event])
    assert reply[1] is None  # nobody waits any more: buffered


async def test_send_event_wakes_a_waiting_instance_with_a_new_job(instance: Instance) -> None:
    await instance.create()
    token = (await instance.activate())[1].decode()
    await instance.commit(
        token, "wait", "wait:a#1", '{"s":"pending","k":"wait","ev":"go","w":99999999999999}', "go", "x"
    )
    suspended = await instance.run(
        "suspendInstance", [instance.k.instance, instance.k.lease, instance.k.log], [token, "99999999999999"]
    )
    assert suspended[:3] == [1, b"waiting", 2]
    reply = await instance.run("sendEvent", instance.six, ["go", '{"type":"go","timestamp":1,"payload":1}'])
    assert reply[1].decode() == "wait:a#1" and reply[2] == 3
    assert await instance.field("status") == "queued"


async def test_pause_takes_effect_at_the_next_step_boundary(instance: Instance) -> None:
    await instance.create()
    token = (await instance.activate())[1].decode()
    pause = await instance.run("pauseInstance", [instance.k.instance, instance.k.lease, instance.k.log], [])
    assert [pause[0], pause[1].decode()] == [1, "waitingForPause"]
    # the step that runs may still commit; a new attempt does not start
    assert (await instance.commit(token, "final", "do:a#1", OK))[2].decode() == "waitingForPause"
    assert (await instance.commit(token, "put", "do:b#1", PENDING, "start", "1"))[0] == ScriptCode.PAUSING
    done = await instance.run(
        "suspendInstance", [instance.k.instance, instance.k.lease, instance.k.log], [token, ""]
    )
    assert done[:2] == [1, b"paused"]
    assert await instance.redis.exists(instance.k.lease) == 0


async def test_resume_shifts_pending_timers_by_the_paused_time(instance: Instance) -> None:
    await instance.create()
    await instance.redis.hset(instance.k.instance, mapping={"status": "paused", "paused_at": 1000})
    await instance.redis.hset(
        instance.k.steps,
        mapping={
            "sleep:s#1": '{"s":"pending","k":"sleep","w":5000}',
            "do:x#1": '{"s":"ok","k":"do","w":5000,"v":1}',
        },
    )
    reply = await instance.run(
        "resumeInstance", [instance.k.instance, instance.k.lease, instance.k.steps, instance.k.log], []
    )
    assert reply[0] == 1 and reply[1] == b"queued" and reply[2] == 2
    shifted = orjson.loads(await instance.redis.hget(instance.k.steps, "sleep:s#1"))["w"]
    now_ms = (await instance.redis.time())[0] * 1000
    assert shifted - 5000 == pytest.approx(now_ms - 1000, abs=2000)  # moved by the paused time
    assert (
        orjson.loads(await instance.redis.hget(instance.k.steps, "do:x#1"))["w"] == 5000
    )  # final: untouched


async def test_reconcile_is_a_compare_and_set_on_the_job_sequence(instance: Instance) -> None:
    await instance.create()
    three = [instance.k.instance, instance.k.lease, instance.k.log]
    assert list(await instance.run("reconcileInstance", three, ["7"])) == [0]  # the sequence moved on
    assert list(await instance.run("reconcileInstance", three, ["1"])) == [1, 2]
    await instance.activate()
    assert (await instance.run("reconcileInstance", three, ["2"]))[0] == ScriptCode.LEASE_HELD
