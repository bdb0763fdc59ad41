"""Durable workflows the tests run, in the test process and in worker processes
(``bullflow durable-worker tests.durable.workflows``). Side effects are counted in Redis
(``INCR <params.counter>:<name>``) so that every process sees them."""

from __future__ import annotations

import asyncio
import os
import time
import signal
from typing import Any

import redis.asyncio as aioredis

from bullflow.durable import (
    NonRetryableError,
    RetryConfig,
    StepContext,
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
            await step.do("always", always, retries=RetryConfig(limit=p["limit"], delay=p["delay"], backoff="exponential"))
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
        p = event.payload
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

        @step.do("d", depends=[b, c], concurrent=True, join=p.get("join", "all_success"), retries=RetryConfig(limit=0))
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

        results = await asyncio.gather(*(step.do(f"w{i}", lambda i=i: work(i)) for i in range(p.get("width", 5))))
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
