"""``step``: what a durable workflow's ``run`` calls. ``do`` runs (or replays) a step,
``sleep`` / ``sleep_until`` wait on durable timers, ``wait_for_event`` waits for an event sent
with ``WorkflowInstance.send_event``. ``do`` used as a decorator defines a step with
dependencies (``depends=[...]``) whose results are passed to it: a DAG of steps with a join
policy per step."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, overload

from ..exceptions import StepConfigError, StepSkippedError
from .duration import Duration, to_epoch_ms, to_ms
from .entrypoint import Event
from .replay import Replay, RetryConfig, StepOptions, Suspend

__all__ = ["JOIN_POLICIES", "StepFunction", "WorkflowStep"]

JOIN_POLICIES = ("all_success", "all_done", "any_success", "none_failed")
MAX_SLEEP_MS = 365 * 86_400_000
DEFAULT_TIMEOUT: Duration = "10 minutes"
DEFAULT_WAIT_TIMEOUT: Duration = "24 hours"


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise StepConfigError(f"{what}: the name must be a non-empty string, got {name!r}")
    if len(name) > 256:
        raise StepConfigError(f"{what} {name[:40]!r}...: the name is longer than 256 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or "/" in name:
        raise StepConfigError(f"{what} {name!r}: the name must not contain control characters or '/'")
    return name


def _options(name: str, retries: RetryConfig | None, timeout: Duration | None) -> StepOptions:
    if retries is None and timeout is None:
        return _DEFAULT_OPTIONS  # the common case, on every (replayed) step: built once
    if retries is not None and not isinstance(retries, RetryConfig):
        raise StepConfigError(f"step {name!r}: retries must be a RetryConfig, got {type(retries).__name__}")
    timeout_ms = to_ms(DEFAULT_TIMEOUT if timeout is None else timeout, f"step {name!r}: timeout")
    if timeout_ms <= 0:
        raise StepConfigError(f"step {name!r}: timeout must be more than 0")
    return StepOptions(retries or RetryConfig(), timeout_ms)


_DEFAULT_OPTIONS = StepOptions(RetryConfig(), to_ms(DEFAULT_TIMEOUT, "the default step timeout"))


class WorkflowStep:
    """The ``step`` argument of ``run``; one per replay."""

    def __init__(self, replay: Replay) -> None:
        self._replay = replay

    @property
    def instance_id(self) -> str:
        return self._replay.instance_id

    @overload
    def do(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *,
        retries: RetryConfig | None = ...,
        timeout: Duration | None = ...,
    ) -> Awaitable[Any]: ...

    @overload
    def do(
        self,
        name: str,
        fn: None = ...,
        /,
        *,
        retries: RetryConfig | None = ...,
        timeout: Duration | None = ...,
        depends: Sequence[StepFunction] = ...,
        concurrent: bool = ...,
        join: str = ...,
    ) -> Callable[[Callable[..., Any]], StepFunction]: ...

    def do(
        self,
        name: str,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        retries: RetryConfig | None = None,
        timeout: Duration | None = None,
        depends: Sequence[StepFunction] = (),
        concurrent: bool = False,
        join: str = "all_success",
    ) -> Any:
        """Run ``fn`` (async or sync; given a :class:`StepContext` when it takes an argument) as
        the step ``name`` and return its result; on replay return the recorded result, or raise
        the recorded error again as the same exception type. A failing attempt is retried per
        ``retries``; ``NonRetryableError`` stops at once; ``timeout`` (default 10 minutes)
        bounds each attempt. Without ``fn``, a decorator that defines a :class:`StepFunction`."""
        _check_name(name, "step")
        options = _options(name, retries, timeout)
        if fn is None:
            if join not in JOIN_POLICIES:
                raise StepConfigError(
                    f"step {name!r}: join must be one of {', '.join(JOIN_POLICIES)}, got {join!r}"
                )
            for dep in depends:
                if not isinstance(dep, StepFunction):
                    raise StepConfigError(f"step {name!r}: depends must list steps defined with @step.do")

            def define(function: Callable[..., Any]) -> StepFunction:
                return StepFunction(self._replay, name, function, options, tuple(depends), concurrent, join)

            return define
        if depends:
            raise StepConfigError(
                f"step {name!r}: depends= is for the decorator form (@step.do(name, depends=...))"
            )
        if not callable(fn):
            raise StepConfigError(f"step {name!r}: fn must be callable, got {type(fn).__name__}")
        call = self._replay.begin("do", name, options.config)
        return self._replay.do(call, fn, options, ())

    def sleep(self, name: str, duration: Duration) -> Awaitable[None]:
        """Sleep ``duration`` (seconds, a timedelta or text like ``"5 minutes"``; at most 365
        days). The wake-up time is stored at the first call and never recomputed."""
        _check_name(name, "sleep")
        ms = to_ms(duration, f"sleep {name!r}")
        if ms > MAX_SLEEP_MS:
            raise StepConfigError(f"sleep {name!r}: at most 365 days")
        call = self._replay.begin("sleep", name, None)
        return self._replay.sleep(call, lambda now: now + ms)

    def sleep_until(self, name: str, when: datetime | float) -> Awaitable[None]:
        """Sleep until ``when`` (a datetime, naive = UTC, or epoch seconds). A time already past
        when the step first runs raises :class:`StepConfigError`."""
        _check_name(name, "sleep_until")
        at = to_epoch_ms(when, f"sleep_until {name!r}")

        def wake_at(now: int) -> int:
            if at < now:
                raise StepConfigError(f"sleep_until {name!r}: {when!r} is in the past")
            if at - now > MAX_SLEEP_MS:
                raise StepConfigError(f"sleep_until {name!r}: at most 365 days ahead")
            return at

        call = self._replay.begin("sleep", name, None)
        return self._replay.sleep(call, wake_at)

    def wait_for_event(
        self, name: str, *, type: str, timeout: Duration = DEFAULT_WAIT_TIMEOUT
    ) -> Awaitable[Event]:
        """Wait for an event of ``type`` (sent with ``WorkflowInstance.send_event``; one sent
        before the wait is buffered, not lost) and return it; after ``timeout`` (default 24
        hours) raise :class:`WaitTimeoutError`. Each event resolves exactly one waiter."""
        _check_name(name, "wait_for_event")
        if not isinstance(type, str) or not type or len(type) > 256:
            raise StepConfigError(
                f"wait_for_event {name!r}: type must be a non-empty string of at most 256 characters"
            )
        timeout_ms = to_ms(timeout, f"wait_for_event {name!r}: timeout")
        if timeout_ms <= 0 or timeout_ms > MAX_SLEEP_MS:
            raise StepConfigError(
                f"wait_for_event {name!r}: timeout must be more than 0 and at most 365 days"
            )
        call = self._replay.begin("wait", name, {"type": type})
        return self._replay.wait(call, type, timeout_ms)


class StepFunction:
    """A step defined with ``@step.do(name, depends=[...], concurrent=..., join=...)``. Calling
    it (``await final()``) runs its dependencies first (each once, however often it is called;
    concurrently when ``concurrent``), then the step with their results as positional arguments,
    if its join policy is met:

    * ``all_success`` (default): every dependency succeeded; as soon as one fails or is skipped
      the step is skipped (dependencies still running finish their attempt, never cut in half);
    * ``all_done``: always runs, given each dependency's result or its exception;
    * ``any_success``: at least one succeeded (failed ones are given as None);
    * ``none_failed``: none failed (skipped ones are given as None).

    A skipped step raises :class:`StepSkippedError`, which counts as "skipped" for the steps
    that depend on it. Waiting never hangs: every policy decides once its dependencies settle.
    """

    def __init__(
        self,
        replay: Replay,
        name: str,
        fn: Callable[..., Any],
        options: StepOptions,
        depends: tuple[StepFunction, ...],
        concurrent: bool,
        join: str,
    ) -> None:
        self._replay = replay
        self.name = name
        self.fn = fn
        self.options = options
        self.depends = depends
        self.concurrent = concurrent
        self.join = join
        self._task: asyncio.Task[Any] | None = None

    def __call__(self) -> asyncio.Task[Any]:
        if self._task is None:
            if self.concurrent:
                deps = [dep() for dep in self.depends]
                call = self._replay.begin("do", self.name, self.options.config)
                self._task = self._replay.spawn(self._run_concurrent(call, deps))
            else:
                call = self._replay.begin("do", self.name, self.options.config)
                self._task = self._replay.spawn(self._run_sequential(call))
        return self._task

    async def _run_concurrent(self, call: Any, deps: list[asyncio.Task[Any]]) -> Any:
        try:
            results: list[Any] = [None] * len(deps)
            settled = [False] * len(deps)
            pending = set(deps)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index = deps.index(task)
                    settled[index] = True
                    results[index] = _outcome(task)
                if self.join == "all_success" and any(isinstance(r, BaseException) for r in results):
                    break  # fail fast: the rest are not waited for
            args = self._decide(results, settled)
        except BaseException:
            self._replay.settle(call)
            raise
        return await self._replay.do(call, self.fn, self.options, args)

    async def _run_sequential(self, call: Any) -> Any:
        try:
            results: list[Any] = []
            for dep in self.depends:
                task = dep()
                await asyncio.wait([task])
                results.append(_outcome(task))
                if self.join == "all_success" and isinstance(results[-1], BaseException):
                    break
            settled = [True] * len(results) + [False] * (len(self.depends) - len(results))
            results += [None] * (len(self.depends) - len(results))
            args = self._decide(results, settled)
        except BaseException:
            self._replay.settle(call)
            raise
        return await self._replay.do(call, self.fn, self.options, args)

    def _decide(self, results: list[Any], settled: list[bool]) -> tuple[Any, ...]:
        """The arguments of the step, or StepSkippedError when its join policy is not met."""
        failed = [
            d.name
            for d, r, s in zip(self.depends, results, settled, strict=False)
            if s and isinstance(r, BaseException) and not isinstance(r, StepSkippedError)
        ]
        skipped = [
            d.name
            for d, r, s in zip(self.depends, results, settled, strict=False)
            if s and isinstance(r, StepSkippedError)
        ]
        succeeded = [s and not isinstance(r, BaseException) for r, s in zip(results, settled, strict=False)]
        if self.join == "all_success":
            met = all(succeeded)
        elif self.join == "all_done":
            met = True
        elif self.join == "any_success":
            met = any(succeeded) or not self.depends
        else:
            met = not failed
        if not met:
            raise StepSkippedError(self.name, self.join, failed + skipped)
        if self.join == "all_done":
            return tuple(results)
        return tuple(None if isinstance(r, BaseException) else r for r in results)


def _outcome(task: asyncio.Task[Any]) -> Any:
    """A settled dependency's result or exception; a suspension, fencing or cancellation goes on
    up (the dependent cannot decide yet)."""
    if task.cancelled():
        raise asyncio.CancelledError()
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, Suspend):
        raise Suspend()
    raise exc
