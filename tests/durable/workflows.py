"""Durable workflows the tests run, in the test process and in worker processes
(``bullflow durable-worker tests.durable.workflows``). Side effects are counted in Redis
(``INCR <params.counter>:<name>``) so that every process sees them."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import redis.asyncio as aioredis

from bullflow.durable import (
    NonRetryableError,
    RetryConfig,
    StepContext,
    StepTimeoutError,
    WorkflowEntrypoint,
    WorkflowEvent,
    WorkflowStep,
)


async def count(params: dict[str, Any], name: str) -> int:
    """Record one execution of side effect ``name``; returns how many there were."""
    async with aioredis.Redis.from_url(params["redis"]) as client:
        return int(await client.incr(f"{params['counter']}:{name}"))


async def record_time(params: dict[str, Any], name: str, value: str) -> None:
    async with aioredis.Redis.from_url(params["redis"]) as client:
        await client.rpush(f"{params['counter']}:{name}", value)


class CustomError(Exception):
    """A user error type: replays must raise it again as this type."""


class ThreeSteps(WorkflowEntrypoint):
    """Three no-op steps (the bench's shape) returning a sum."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        a = await step.do("a", _one)
        b = await step.do("b", _one)
        c = await step.do("c", _one)
        return a + b + c


async def _one() -> int:
    return 1


class SleepsAndLoops(WorkflowEntrypoint):
    """E1 + E6: two sleeps, and one step name called three times in a loop."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        seen = []
        await step.sleep("first", p["sleep"])
        seen.append(await step.do("between", lambda: count(p, "between")))
        await step.sleep("second", p["sleep"])
        for i in range(3):
            seen.append(await step.do("same", _constant(i)))
        return seen


def _constant(value: int) -> Any:
    async def fn() -> int:
        return value

    return fn


class CaughtError(WorkflowEntrypoint):
    """E2: a caught step error, then a suspension (a wait), then the replay re-raises it."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def fail() -> None:
            await count(p, "fail")
            raise CustomError("boom")

        try:
            await step.do("fail", fail, retries=RetryConfig(limit=0))
        except CustomError as err:
            caught = f"caught:{type(err).__name__}:{err}"
        got = await step.wait_for_event("go", type="go", timeout=60)
        return {"caught": caught, "event": got.payload}


class WaitThenSideEffect(WorkflowEntrypoint):
    """E3: wait for an event, then a side-effecting step that takes a while."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        got = await step.wait_for_event("approval", type="approve", timeout=p.get("timeout", 60))

        async def side() -> int:
            n = await count(p, "side")
            await asyncio.sleep(p.get("side_seconds", 0.3))
            return n

        n = await step.do("side", side)
        return {"approved": got.payload, "n": n}


class SlowSteps(WorkflowEntrypoint):
    """Pause / terminate / kill: steps that take ``seconds`` each and count their executions."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        out = []
        for i in range(p.get("steps", 2)):

            async def slow(i: int = i) -> int:
                await count(p, f"s{i}")
                if p.get("kill_in_step") == i and await count(p, "killed") == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                await asyncio.sleep(p.get("seconds", 0.3))
                return i

            out.append(await step.do(f"s{i}", slow, retries=RetryConfig(limit=3, delay=0.1)))
        return out


class Backoff(WorkflowEntrypoint):
    """E5: a step that always fails, with exponential backoff; it records when each attempt ran."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def always(ctx: StepContext) -> None:
            await record_time(p, "times", f"{ctx.attempt}:{time.time()}")
            await count(p, "attempts")
            raise RuntimeError(f"attempt {ctx.attempt} failed")

        try:
            await step.do(
                "always",
                always,
                retries=RetryConfig(limit=p["limit"], delay=p["delay"], backoff="exponential"),
            )
        except RuntimeError as err:
            return f"gave up: {err}"
        return "unreachable"


class NonRetryable(WorkflowEntrypoint):
    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def fail() -> None:
            await count(p, "nonretryable")
            raise NonRetryableError("stop now")

        await step.do("fail", fail, retries=RetryConfig(limit=5, delay=0.01))


class Waiters(WorkflowEntrypoint):
    """Two waits on the same type (each takes one event) and one with a short timeout."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        first, second = await asyncio.gather(
            step.wait_for_event("w1", type="item", timeout=60),
            step.wait_for_event("w2", type="item", timeout=60),
        )
        return sorted([first.payload, second.payload])


class TimeoutRace(WorkflowEntrypoint):
    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        try:
            got = await step.wait_for_event("w", type="ping", timeout=p["timeout"])
            outcome = f"event:{got.payload}"
        except Exception as err:  # WaitTimeoutError
            outcome = f"timeout:{type(err).__name__}"
        await step.sleep("after", p.get("after", 0))
        return outcome


class Diamond(WorkflowEntrypoint):
    """A DAG of steps: a -> (b, c) -> d, with the join policy and failures from the params."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        fail = set(p.get("fail", []))

        def body(name: str) -> Any:
            async def fn(*deps: Any) -> Any:
                await count(p, name)
                await asyncio.sleep(p.get("seconds", 0))
                if name in fail:
                    raise CustomError(f"{name} failed")
                return [name, [d if not isinstance(d, BaseException) else f"error:{d}" for d in deps]]

            return fn

        @step.do("a", retries=RetryConfig(limit=0))
        async def a() -> Any:
            return await body("a")()

        @step.do("b", depends=[a], retries=RetryConfig(limit=0))
        async def b(ra: Any) -> Any:
            return await body("b")(ra)

        @step.do("c", depends=[a], retries=RetryConfig(limit=0))
        async def c(ra: Any) -> Any:
            return await body("c")(ra)

        @step.do(
            "d",
            depends=[b, c],
            concurrent=True,
            join=p.get("join", "all_success"),
            retries=RetryConfig(limit=0),
        )
        async def d(rb: Any, rc: Any) -> Any:
            return await body("d")(rb, rc)

        try:
            return {"d": await d()}
        except Exception as err:
            return {"error": type(err).__name__, "message": str(err)}


class FanOut(WorkflowEntrypoint):
    """Many concurrent slow steps (cancellation mid-fan-out)."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def work(i: int) -> int:
            await count(p, "started")
            await asyncio.sleep(p.get("seconds", 1))
            await count(p, "finished")
            return i

        results = await asyncio.gather(
            *(step.do(f"w{i}", lambda i=i: work(i)) for i in range(p.get("width", 5)))
        )
        return sum(results)


class ManySteps(WorkflowEntrypoint):
    """``n`` no-op steps, then a wait: replay cost with a long history."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        total = 0
        for i in range(p["n"]):
            total += await step.do(f"s{i}", _one)
        if p.get("wait"):
            await step.wait_for_event("end", type="end", timeout=600)
        return total


# --------------------------------------------------------------------------------------------
# test_replay / test_retries / test_events / test_limits


class NonDetOriginal(WorkflowEntrypoint):
    """Non-determinism: step "a", then a wait; the variants below share its name."""

    name = "NonDet"

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        await step.do("a", _one)
        await step.wait_for_event("go", type="go", timeout=60)
        return await step.do("b", _one)


class NonDetRenamed(WorkflowEntrypoint):
    """Same workflow name, but the first step is now called "x"."""

    name = "NonDet"

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        await step.do("x", _one)
        await step.wait_for_event("go", type="go", timeout=60)
        return await step.do("b", _one)


class NonDetReconfigured(WorkflowEntrypoint):
    """Same workflow name, but the first step now has another retry configuration."""

    name = "NonDet"

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        await step.do("a", _one, retries=RetryConfig(limit=1))
        await step.wait_for_event("go", type="go", timeout=60)
        return await step.do("b", _one)


class GatherSameName(WorkflowEntrypoint):
    """Three concurrent steps with one name that finish in reverse order, then a sleep."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        def body(i: int) -> Any:
            async def fn() -> int:
                await count(p, f"x{i}")
                await asyncio.sleep(0.03 * (3 - i))
                return i

            return fn

        values = await asyncio.gather(*(step.do("x", body(i)) for i in range(3)))
        await step.sleep("nap", p["sleep"])
        return list(values)


class NestedSteps(WorkflowEntrypoint):
    """A step whose function runs two steps of its own; its first attempt fails after them, and
    the retry (after ``delay``) replays them from the history."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def inner(i: int) -> int:
            await count(p, f"inner{i}")
            return 10 * i

        async def outer(ctx: StepContext) -> list[int]:
            await count(p, "outer")
            got = [await step.do("inner", lambda: inner(1)), await step.do("inner", lambda: inner(2))]
            if ctx.attempt == 1:
                raise CustomError("outer fails once")
            return [*got, ctx.attempt]

        out = await step.do("outer", outer, retries=RetryConfig(limit=1, delay=p["delay"]))
        await step.sleep("nap", p.get("sleep", 0))
        return out


class LongBackoff(WorkflowEntrypoint):
    """A step that fails on its first attempt and waits ``delay`` before the second."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def flaky(ctx: StepContext) -> int:
            await record_time(p, "times", f"{ctx.attempt}:{time.time()}")
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            return ctx.attempt

        return await step.do(
            "flaky", flaky, retries=RetryConfig(limit=1, delay=p["delay"], backoff="constant")
        )


class StepTimeout(WorkflowEntrypoint):
    """Attempts up to ``hang_attempts`` hang past the step's timeout; later ones return."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def slow(ctx: StepContext) -> int:
            await count(p, "started")
            if ctx.attempt <= p["hang_attempts"]:
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    await count(p, "cancelled")
                    raise
                await count(p, "finished")
            return ctx.attempt

        try:
            return await step.do(
                "slow", slow, timeout=p["timeout"], retries=RetryConfig(limit=p["limit"], delay=0.01)
            )
        except Exception as err:
            return f"failed:{type(err).__name__}"


class AttemptNumbers(WorkflowEntrypoint):
    """A step that records its StepContext and fails until attempt ``succeed_at``."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def fn(ctx: StepContext) -> int:
            await record_time(p, "contexts", f"{ctx.attempt}|{ctx.step}|{ctx.instance_id}")
            if ctx.attempt < p["succeed_at"]:
                raise CustomError(f"attempt {ctx.attempt}")
            return ctx.attempt

        return await step.do(
            "counted", fn, retries=RetryConfig(limit=p["limit"], delay=0.01, backoff="constant")
        )


class SleepThenWait(WorkflowEntrypoint):
    """A sleep (an event sent meanwhile is buffered), then a wait."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        await step.sleep("nap", p["sleep"])
        got = await step.wait_for_event("w", type="ping", timeout=60)
        return {"type": got.type, "payload": got.payload}


class WaitUncaught(WorkflowEntrypoint):
    """A wait whose timeout is not caught: the instance fails with WaitTimeoutError."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        await step.wait_for_event("w", type="never", timeout=event.payload["timeout"])
        return "unreachable"


class BigOutput(WorkflowEntrypoint):
    """A step whose output has ``size`` characters."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        size = event.payload["size"]

        async def big() -> str:
            return "x" * size

        text = await step.do("big", big, retries=RetryConfig(limit=0))
        return len(text)


class BadConfig(WorkflowEntrypoint):
    """Bad step names and durations: each call raises StepConfigError, which the workflow
    catches; returns what each raised."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        calls: dict[str, Any] = {
            "empty name": lambda: step.do("", _one),
            "slash in name": lambda: step.do("a/b", _one),
            "control char": lambda: step.do("a\nb", _one),
            "long name": lambda: step.do("n" * 300, _one),
            "zero timeout": lambda: step.do("t", _one, timeout=0),
            "bad timeout text": lambda: step.do("t", _one, timeout="soon"),
            "negative sleep": lambda: step.sleep("s", -1),
            "bad sleep text": lambda: step.sleep("s", "forever"),
            "sleep over a year": lambda: step.sleep("s", "366 days"),
            "bad wait type": lambda: step.wait_for_event("w", type=""),
            "zero wait timeout": lambda: step.wait_for_event("w", type="x", timeout=0),
            "bad retries": lambda: step.do("r", _one, retries={"limit": 1}),
        }
        out = {}
        for label, call in calls.items():
            try:
                awaitable = call()
                await awaitable
                out[label] = "no error"
            except Exception as err:
                out[label] = type(err).__name__
        out["after"] = await step.do("fine", _one)
        return out


class SleepUntilPast(WorkflowEntrypoint):
    """``sleep_until`` a time already past: the error is caught and reported."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        try:
            await step.sleep_until("then", time.time() - 60)
        except Exception as err:
            return f"{type(err).__name__}:{err}"
        return "slept"


# --------------------------------------------------------------------------------------------
# test_exactly_once / test_lifecycle / test_reconciler / test_cluster


class CountedSteps(WorkflowEntrypoint):
    """Three steps, each counting ``<instance id>:<step>`` (exactly-once checks across processes)."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload
        total = 0
        for name in ("a", "b", "c"):

            async def fn(name: str = name) -> int:
                await count(p, f"{event.instance_id}:{name}")
                await asyncio.sleep(p.get("seconds", 0))
                return 1

            total += await step.do(name, fn)
        return total


class BusyWhileWaiting(WorkflowEntrypoint):
    """E3 with a concurrent step: a wait registers while a slow step still runs (the event arrives
    while the activation holds the lease), then a side-effecting step."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def busy() -> str:
            await count(p, "busy")
            await asyncio.sleep(p.get("busy_seconds", 1.0))
            return "busy"

        async def side() -> int:
            return await count(p, "side")

        b, got = await asyncio.gather(step.do("busy", busy), step.wait_for_event("ev", type="go", timeout=60))
        n = await step.do("side", side)
        return {"busy": b, "event": got.payload, "n": n}


class Cancellable(WorkflowEntrypoint):
    """Terminate: one long step that records whether it finished or was cancelled."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def long() -> str:
            await count(p, "started")
            try:
                await asyncio.sleep(p.get("seconds", 2.0))
            except asyncio.CancelledError:
                await count(p, "cancelled")
                raise
            await count(p, "finished")
            return "done"

        return await step.do("long", long, retries=RetryConfig(limit=0))


class FlakyStep(WorkflowEntrypoint):
    """Restart: a head step, then a step that fails while ``<counter>:fail`` exists (constant
    backoff ``delay``), recording each attempt number in ``<counter>:attempts``."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def head() -> int:
            return await count(p, "head")

        async def flaky(ctx: StepContext) -> int:
            await record_time(p, "attempts", str(ctx.attempt))
            async with aioredis.Redis.from_url(p["redis"]) as client:
                failing = await client.exists(f"{p['counter']}:fail")
            if failing:
                raise RuntimeError(f"attempt {ctx.attempt} failed")
            return ctx.attempt

        await step.do("head", head)
        return await step.do(
            "flaky", flaky, retries=RetryConfig(limit=20, delay=p.get("delay", 0.5), backoff="constant")
        )


class SleepThenStep(WorkflowEntrypoint):
    """Resume offsets timers: one sleep, then a step that returns when it ran (server-independent
    wall clock, seconds)."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def after() -> float:
            await count(p, "after")
            return time.time()

        await step.sleep("nap", p["sleep"])
        return await step.do("after", after)


class CaughtTimeout(WorkflowEntrypoint):
    """E2 for the library's own errors: a step that times out, caught as StepTimeoutError, then a
    wait; the replay raises StepTimeoutError again (with its step and timeout)."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def hang() -> None:
            await count(p, "hang")
            await asyncio.sleep(5)

        try:
            await step.do("hang", hang, timeout=0.1, retries=RetryConfig(limit=0))
        except StepTimeoutError as err:
            caught = f"{type(err).__name__}:{err.step}:{err.timeout}"
        await step.wait_for_event("go", type="go", timeout=60)
        return caught


class RetryBesideWait(WorkflowEntrypoint):
    """E3 in a later activation: a wait (registered in the first activation) beside a step whose
    first attempt fails (its retry suspends the instance) and whose second attempt is slow; the
    event arrives while the second activation replays and runs that attempt."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        p = event.payload

        async def busy(ctx: StepContext) -> int:
            await count(p, "busy")
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            await asyncio.sleep(p.get("busy_seconds", 1.0))
            return ctx.attempt

        async def side() -> int:
            return await count(p, "side")

        b, got = await asyncio.gather(
            step.do(
                "busy", busy, retries=RetryConfig(limit=2, delay=p.get("delay", 0.4), backoff="constant")
            ),
            step.wait_for_event("ev", type="go", timeout=60),
        )
        n = await step.do("side", side)
        return {"busy": b, "event": got.payload, "n": n}
