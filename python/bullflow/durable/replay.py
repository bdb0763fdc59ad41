"""One replay of a durable instance's ``run()``: the step operations as they resolve against the
instance's history (read once, when the activation starts, so a cached step costs no Redis
round trip) and as they commit new history through the fenced ``commitStep`` script.

Step keys are ``<kind>:<name>#<n>``, with ``n`` counted per kind and name when the step is
*called* (synchronously, before its first ``await``), so ``asyncio.gather`` of steps is
deterministic. Steps called inside another step's function are keyed under that step.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..exceptions import (
    InternalAttemptError,
    NonDeterminismError,
    NonRetryableError,
    PayloadTooLargeError,
    StepConfigError,
    StepLimitExceededError,
    StepTimeoutError,
    WaitTimeoutError,
)
from ..keys import InstanceKeys, step_key
from ..scripts import ScriptCode
from ..settings import DurableSettings
from .duration import to_ms
from .entrypoint import Event, event_from_json
from .serialization import decode_error, encode_error
from .store import DurableStore

__all__ = ["Fenced", "Replay", "RetryConfig", "StepContext", "StepOptions", "Suspend"]

logger = logging.getLogger(__name__)

BACKOFFS = ("constant", "linear", "exponential")


class Suspend(BaseException):
    """An open step waits (a timer, an event, a pause): this replay stops here. A BaseException,
    so ``except Exception`` in workflow code does not swallow it."""


class Fenced(BaseException):
    """The runner lost the instance (lease gone, epoch moved on): it stops without writing."""


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How a failing step is retried: up to ``limit`` more attempts, waiting ``delay`` (seconds,
    a duration text or a timedelta; or a callable ``(attempt, error) -> duration``) times 1,
    ``n`` or ``2**(n-1)`` (``backoff`` constant, linear, exponential) after the n-th failure, so
    the first retry waits ``delay``. Defaults: 5 retries, 10 s, exponential."""

    limit: int = 5
    delay: Any = 10.0
    backoff: str = "exponential"

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise StepConfigError(f"retries.limit must be an int >= 0, got {self.limit!r}")
        if self.backoff not in BACKOFFS:
            raise StepConfigError(
                f"retries.backoff must be one of {', '.join(BACKOFFS)}, got {self.backoff!r}"
            )
        if not callable(self.delay):
            to_ms(self.delay, "retries.delay")


@dataclass(frozen=True, slots=True)
class StepOptions:
    """The validated configuration of one ``step.do``; ``config`` is its JSON form, stored with
    the step at its first attempt (replays use it) and hashed into every call's record check."""

    retries: RetryConfig
    timeout_ms: int
    config: dict[str, Any] = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        delay = self.retries.delay
        config = {
            "retries": {
                "limit": self.retries.limit,
                "delay": "callable" if callable(delay) else to_ms(delay, "retries.delay"),
                "backoff": self.retries.backoff,
            },
            "timeout": self.timeout_ms,
        }
        object.__setattr__(self, "config", config)


@dataclass(frozen=True, slots=True)
class StepContext:
    """Given to a step function that takes one argument: which attempt this is (1-based)."""

    attempt: int
    step: str
    instance_id: str


@dataclass(slots=True)
class _Scope:
    parent: str
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Call:
    key: str
    kind: str
    name: str
    h: str
    p: int
    q: int
    nested: bool


_SCOPE: ContextVar[_Scope | None] = ContextVar("bullflow_durable_scope", default=None)
_TAKES_ARG: dict[Any, bool] = {}


def _record(state: str, meta: dict[str, Any], value_text: str | None = None) -> str:
    head = orjson.dumps({"s": state, **meta}).decode()
    if value_text is None:
        return head
    return f'{head[:-1]},"v":{value_text}}}'


def _meta(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("s", "r", "v", "e", "t1")}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Replay:
    """The state of one replay: the history, the call counters, open deadlines and attempts."""

    def __init__(
        self,
        store: DurableStore,
        instance_id: str,
        token: str,
        server_now: int,
        records: dict[str, bytes],
        step_count: int,
    ) -> None:
        self.store = store
        self.settings: DurableSettings = store.settings
        self.instance_id = instance_id
        self.keys: InstanceKeys = store.keys(instance_id)
        self.token = token
        self._clock = (server_now, time.monotonic())
        self.records: dict[str, dict[str, Any]] = {k: orjson.loads(v) for k, v in records.items()}
        self.sequential = {int(r["p"]): k for k, r in self.records.items() if r.get("q") == 1}
        self.root = _Scope("")
        self.step_count = step_count
        self.calls = 0
        self.unsettled = 0
        self.deadlines: list[int] = []
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.suspending = False
        self.pausing = False
        self.fenced = False
        self.fatal: BaseException | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.inline_ms = int(self.settings.inline_threshold * 1000)

    # ------------------------------------------------------------------------------ plumbing
    def now_ms(self) -> int:
        server_now, mono = self._clock
        return server_now + int((time.monotonic() - mono) * 1000)

    def begin(self, kind: str, name: str, config: Any) -> _Call:
        """Assign the call its key and position now, at call time."""
        scope = _SCOPE.get() or self.root
        base = f"{kind}:{name}"
        n = scope.counters.get(base, 0) + 1
        scope.counters[base] = n
        key = step_key(kind, name, n, scope.parent)
        h = hashlib.sha1(orjson.dumps([kind, name, config], option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
        if scope.parent:
            return _Call(key, kind, name, h, 0, 0, True)
        self.calls += 1
        call = _Call(key, kind, name, h, self.calls, 1 if self.unsettled == 0 else 0, False)
        self.unsettled += 1
        return call

    def settle(self, call: _Call) -> None:
        if not call.nested:
            self.unsettled -= 1

    def fail(self, error: BaseException) -> BaseException:
        """A fatal error: the instance fails with it, whatever the workflow code catches."""
        if self.fatal is None:
            self.fatal = error
        return error

    def check(self, call: _Call) -> dict[str, Any] | None:
        """The history's record of ``call``; a NonDeterminismError when the history has another
        step at this place or this step with another kind or configuration."""
        rec = self.records.get(call.key)
        if rec is not None and rec.get("h") != call.h:
            raise self.fail(
                NonDeterminismError(
                    f"instance {self.instance_id}: step {call.key!r} was recorded with another kind or "
                    "configuration than the code now gives it"
                )
            )
        if call.q:
            other = self.sequential.get(call.p)
            if other is not None and other != call.key:
                raise self.fail(
                    NonDeterminismError(
                        f"instance {self.instance_id}: step #{call.p} of the history is {other!r}, "
                        f"the code now calls {call.key!r} there"
                    )
                )
            if rec is not None and rec.get("q") == 1 and rec.get("p") != call.p:
                raise self.fail(
                    NonDeterminismError(
                        f"instance {self.instance_id}: step {call.key!r} was step #{rec.get('p')} of the "
                        f"history, the code now calls it as step #{call.p}"
                    )
                )
        return rec

    def block(self, deadline: int | None) -> Suspend:
        if deadline is not None:
            self.deadlines.append(int(deadline))
        return Suspend()

    def halt(self, rec: dict[str, Any] | None = None) -> Suspend:
        """A step that would start (or retry) now, in a replay that is suspending or pausing: it
        starts in the next activation, so the instance must come back for it at its retry time
        ("w") or at once, not at some other step's later deadline."""
        due = self.now_ms()
        if rec is not None and rec.get("s") == "pending" and rec.get("w"):
            due = int(rec["w"])
        return self.block(due)

    def serialize(self, value: Any, what: str) -> str:
        try:
            text = self.store.serializer.dumps(value)
        except (TypeError, ValueError) as err:
            raise self.fail(
                StepConfigError(f"instance {self.instance_id}: {what} cannot be stored: {err}")
            ) from None
        if len(text.encode()) > self.settings.max_payload_bytes:
            raise self.fail(
                PayloadTooLargeError(
                    f"instance {self.instance_id}: {what} is {len(text.encode())} bytes, more than "
                    f"the limit of {self.settings.max_payload_bytes}"
                )
            )
        return text

    def decode_value(self, value: Any) -> Any:
        if self.store.plain_json:
            return value
        return self.store.serializer.loads(orjson.dumps(value))

    def event(self, value: Any) -> Event:
        event = event_from_json(value)
        if self.store.plain_json:
            return event
        return Event(event.type, self.decode_value(event.payload), event.timestamp)

    async def commit(
        self, op: str, key: str, record: str, log_event: str, detail: str = "", arg7: str = "", arg8: str = ""
    ) -> tuple[int, dict[str, Any] | None]:
        """Run ``commitStep``; returns (code, the record written or found). A commit in flight
        counts as work: the replay does not suspend (and give up its lease) under it."""
        k = self.keys
        self._begin_work()
        try:
            reply = await self.store.run(
                "commitStep",
                [k.instance, k.lease, k.steps, k.events, k.waiters, k.log],
                [self.token, op, key, record, log_event, detail, arg7, arg8],
            )
        finally:
            self._end_work()
        code = int(reply[0])
        if code == ScriptCode.FENCED:
            self.fenced = True
            raise Fenced()
        if reply[2] is not None and _text(reply[2]) == "waitingForPause":
            self.pausing = True
        if code == ScriptCode.PAUSING:
            raise Suspend()
        stored = orjson.loads(reply[1]) if reply[1] is not None else None
        if stored is not None:
            self.records[key] = stored
        return code, stored

    def _begin_work(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def _end_work(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    # --------------------------------------------------------------------------------- do
    async def do(
        self, call: _Call, fn: Callable[..., Any], options: StepOptions, args: tuple[Any, ...]
    ) -> Any:
        try:
            return await self._do(call, fn, options, args)
        finally:
            self.settle(call)

    async def _do(
        self, call: _Call, fn: Callable[..., Any], options: StepOptions, args: tuple[Any, ...]
    ) -> Any:
        rec = self.check(call)
        while True:
            if rec is not None and rec["s"] == "ok":
                return self.decode_value(rec.get("v"))
            if rec is not None and rec["s"] == "err":
                raise decode_error(rec["e"], call.name)
            if not call.nested and (self.suspending or self.pausing):
                raise self.halt(rec)
            frozen = rec["cfg"] if rec is not None else options.config
            attempts = int(rec.get("a", 0)) if rec is not None else 0
            if rec is not None and rec.get("r") == 1:
                lost = InternalAttemptError(
                    f"attempt {attempts} of step {call.name!r} did not finish: its worker was lost"
                )
                self._begin_work()
                try:
                    rec = await self._attempt_failed(call, rec, frozen, options, attempts, lost)
                finally:
                    self._end_work()
                continue
            if rec is not None and rec.get("w"):
                wait = int(rec["w"]) - self.now_ms()
                if wait > 0:
                    if not call.nested and wait > self.inline_ms:
                        raise self.block(int(rec["w"]))
                    await asyncio.sleep(wait / 1000)
                    if not call.nested and (self.suspending or self.pausing):
                        raise self.halt()
            if rec is None:
                self.step_count += 1
                limit = self.settings.step_limit
                if self.step_count > limit:
                    raise self.fail(
                        StepLimitExceededError(
                            f"instance {self.instance_id}: step {call.name!r} would be step "
                            f"{self.step_count}, over the limit of {limit}"
                        )
                    )
                if self.step_count == int(limit * 0.8):
                    logger.warning(
                        "instance %s has started %d of its %d steps", self.instance_id, self.step_count, limit
                    )
            attempt = attempts + 1
            meta = (
                _meta(rec)
                if rec is not None
                else {"k": "do", "h": call.h, "p": call.p, "q": call.q, "cfg": frozen}
            )
            meta.pop("w", None)
            meta.pop("le", None)
            started = {**meta, "a": attempt, "r": 1, "t0": self.now_ms()}
            self._begin_work()
            try:
                code, stored = await self.commit(
                    "put",
                    call.key,
                    _record("pending", started),
                    "STEP_START" if attempt == 1 else "ATTEMPT_START",
                    str(attempt),
                    "start",
                    "1" if rec is None else "",
                )
                if code == ScriptCode.ALREADY_PRESENT:
                    rec = stored
                    continue
                rec = {"s": "pending", **started}
                try:
                    value = await self._invoke(call, fn, args, attempt, int(frozen["timeout"]))
                except Exception as exc:
                    rec = await self._attempt_failed(call, rec, frozen, options, attempt, exc)
                    if rec["s"] == "err":
                        raise
                    continue
                text = self.serialize(value, f"the output of step {call.name!r}")
                done = {k: v for k, v in started.items() if k != "r"}
                done["t1"] = self.now_ms()
                code, stored = await self.commit(
                    "final", call.key, _record("ok", done, text), "STEP_SUCCESS", str(attempt)
                )
                if code == ScriptCode.ALREADY_PRESENT:
                    rec = stored
                    continue
                return self.decode_value(orjson.loads(text))
            finally:
                self._end_work()

    async def _invoke(
        self, call: _Call, fn: Callable[..., Any], args: tuple[Any, ...], attempt: int, timeout_ms: int
    ) -> Any:
        if not args and _takes_context(fn):
            args = (StepContext(attempt=attempt, step=call.name, instance_id=self.instance_id),)
        token = _SCOPE.set(_Scope(call.key))
        try:
            if inspect.iscoroutinefunction(fn):
                awaitable: Awaitable[Any] = fn(*args)
            else:
                awaitable = _call_in_thread(fn, args)
            try:
                return await asyncio.wait_for(awaitable, timeout_ms / 1000)
            except (asyncio.TimeoutError, TimeoutError):
                raise StepTimeoutError(call.name, timeout_ms / 1000) from None
        finally:
            _SCOPE.reset(token)

    async def _attempt_failed(
        self,
        call: _Call,
        rec: dict[str, Any],
        frozen: dict[str, Any],
        options: StepOptions,
        attempt: int,
        exc: BaseException,
    ) -> dict[str, Any]:
        """Record a failed attempt: the step's final error, or its retry time. Returns the record."""
        error = encode_error(exc)
        meta = _meta(rec)
        meta.pop("w", None)
        meta.pop("le", None)
        meta["a"] = attempt
        retries = frozen["retries"]
        delay_ms: int | None = None
        if not isinstance(exc, NonRetryableError) and attempt <= int(retries["limit"]):
            delay_ms = self._backoff_ms(retries, options, attempt, exc)
        if delay_ms is None:
            final = {**meta, "t1": self.now_ms(), "e": error}
            code, stored = await self.commit(
                "final", call.key, _record("err", final), "STEP_FAILURE", orjson.dumps(error).decode()
            )
            return (
                stored if code == ScriptCode.ALREADY_PRESENT and stored is not None else {"s": "err", **final}
            )
        retry = {**meta, "w": self.now_ms() + delay_ms, "le": error}
        await self.commit(
            "put", call.key, _record("pending", retry), "ATTEMPT_FAILURE", orjson.dumps(error).decode()
        )
        return {"s": "pending", **retry}

    def _backoff_ms(
        self, retries: dict[str, Any], options: StepOptions, attempt: int, exc: BaseException
    ) -> int | None:
        base = retries["delay"]
        if base == "callable":
            delay = options.retries.delay
            if not callable(delay):
                return None
            try:
                return to_ms(delay(attempt, exc), "retries.delay()")
            except Exception:
                logger.warning("retries.delay of step failed; no more retries", exc_info=True)
                return None
        factors = {"constant": 1, "linear": attempt, "exponential": 1 << (attempt - 1)}
        return int(base) * factors[str(retries["backoff"])]

    # ------------------------------------------------------------------------------ sleep
    async def sleep(self, call: _Call, wake_at: Callable[[int], int]) -> None:
        try:
            if call.nested:
                raise StepConfigError(f"step.sleep {call.name!r} cannot run inside another step's function")
            rec = self.check(call)
            if rec is not None and rec["s"] == "ok":
                return
            if rec is None:
                if self.suspending or self.pausing:
                    raise self.halt()
                now = self.now_ms()
                meta = {"k": "sleep", "h": call.h, "p": call.p, "q": call.q, "w": wake_at(now), "t0": now}
                _, stored = await self.commit(
                    "put", call.key, _record("pending", meta), "SLEEP_START", str(meta["w"])
                )
                rec = stored if stored is not None else {"s": "pending", **meta}
                if rec["s"] == "ok":
                    return
            wait = int(rec["w"]) - self.now_ms()
            if wait > self.inline_ms:
                raise self.block(int(rec["w"]))
            self._begin_work()
            try:
                if wait > 0:
                    await asyncio.sleep(wait / 1000)
                done = {**_meta(rec), "t1": self.now_ms()}
                await self.commit("final", call.key, _record("ok", done, "null"), "SLEEP_COMPLETE")
            finally:
                self._end_work()
        finally:
            self.settle(call)

    # ----------------------------------------------------------------------- wait_for_event
    async def wait(self, call: _Call, event_type: str, timeout_ms: int) -> Event:
        try:
            if call.nested:
                raise StepConfigError(
                    f"step.wait_for_event {call.name!r} cannot run inside another step's function"
                )
            rec = self.check(call)
            if rec is None:
                if self.suspending or self.pausing:
                    raise self.halt()
                now = self.now_ms()
                meta = {
                    "k": "wait",
                    "h": call.h,
                    "p": call.p,
                    "q": call.q,
                    "ev": event_type,
                    "w": now + timeout_ms,
                    "t0": now,
                }
                ok_prefix = _record("ok", meta)[:-1] + ',"v":'
                _, rec = await self.commit(
                    "wait",
                    call.key,
                    _record("pending", meta),
                    "WAIT_START",
                    event_type,
                    event_type,
                    ok_prefix,
                )
                assert rec is not None
            if rec["s"] == "pending" and self.now_ms() >= int(rec["w"]):
                error = encode_error(WaitTimeoutError(call.name, event_type))
                final = {**_meta(rec), "t1": self.now_ms(), "e": error}
                _, stored = await self.commit(
                    "timeout", call.key, _record("err", final), "WAIT_TIMEOUT", event_type, event_type
                )
                rec = stored if stored is not None else {"s": "err", **final}
            if rec["s"] == "ok":
                return self.event(rec.get("v"))
            if rec["s"] == "err":
                raise decode_error(rec["e"], call.name)
            raise self.block(int(rec["w"]))
        finally:
            self.settle(call)

    # ------------------------------------------------------------------------ end of replay
    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(_forget_task(self.tasks))
        return task

    async def quiesce(self) -> None:
        """Wait for attempts and inline waits in flight to commit (no new work starts), then
        cancel what is left of the step tasks this replay spawned."""
        self.suspending = True
        await self.idle.wait()
        leftovers = [t for t in self.tasks if not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)


def _forget_task(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    """Done callback of a spawned step task: drop it from the replay's set, and mark its
    exception retrieved (a Suspend or an error its dependents already saw), so that asyncio does
    not log it as never retrieved."""

    def forget(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return forget


async def _call_in_thread(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


def _takes_context(fn: Callable[..., Any]) -> bool:
    key = getattr(fn, "__code__", fn)
    known = _TAKES_ARG.get(key)
    if known is None:
        try:
            params = [
                p
                for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
            known = len(params) >= 1
        except (TypeError, ValueError):
            known = False
        try:
            _TAKES_ARG[key] = known
        except TypeError:
            pass
    return known
