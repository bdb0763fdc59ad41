"""Starting and following distributed runs: :class:`Client` writes a run's initial context and
enqueues its start nodes in one ``startRun`` script; :class:`RunHandle` waits for the run's status
by subscription (one ``bullflow:status:*`` pattern subscription per client), so ``result()``
returns as soon as the status is published, without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from . import keys
from ._impl import decode_value, encode_value
from .blueprint import BlueprintSource
from .compile import CompiledBlueprint
from .coordination import CommitResult, CoordinationStore, RedisCoordinationStore, RunOptions
from .exceptions import BullflowError, ResumeError
from .results import WorkflowError, WorkflowResult
from .runtime import FlowRuntime
from .scripts import ScriptCode
from .settings import RedisSettings

__all__ = ["Client", "RunHandle", "result_from_status"]

logger = logging.getLogger(__name__)

_MISSING: Any = object()
_FINAL = frozenset({"completed", "failed", "cancelled"})


def _context_pairs(context: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(str(k), encode_value(v, str(k)).decode()) for k, v in (context or {}).items()]


def result_from_status(run_id: str, text: bytes | str) -> WorkflowResult:
    """A :class:`WorkflowResult` from the JSON of ``workflow:status:<runId>``."""
    status = decode_value(text, keys.status_key(run_id))
    if not isinstance(status, Mapping) or status.get("status") not in (*_FINAL, "awaiting"):
        raise BullflowError(f"{keys.status_key(run_id)} does not hold a status object")
    payload: Mapping[str, Any] = status["payload"] if isinstance(status.get("payload"), Mapping) else {}
    context: Mapping[str, Any] = payload["context"] if isinstance(payload.get("context"), Mapping) else {}
    errors = [
        WorkflowError(message=str(e.get("message")), node_id=e.get("nodeId"))
        for e in payload.get("errors") or ()
        if isinstance(e, Mapping)
    ]
    reason = status.get("reason")
    if reason and not errors and status.get("status") in ("failed", "cancelled"):
        errors.append(WorkflowError(message=str(reason), node_id=None))
    blueprint_id = context.get("blueprintId")
    return WorkflowResult(
        status=status["status"],
        context=dict(context),
        errors=errors,
        run_id=run_id,
        blueprint_id=blueprint_id if isinstance(blueprint_id, str) else "",
    )


class RunHandle:
    """A started run."""

    def __init__(
        self, client: Client, run_id: str, blueprint_id: str, first: asyncio.Future[bytes] | None = None
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.blueprint_id = blueprint_id
        # Set up before the run started, so its first status cannot be missed (no status read).
        self._first = first

    async def result(self, timeout: float | None = None) -> WorkflowResult:
        """The run's result once it is published (``completed``, ``failed``, ``cancelled``, or
        ``awaiting`` when it waits for a resume). Raises ``TimeoutError`` after ``timeout``
        seconds."""
        first = self._first
        if first is None:
            return await self.client.wait_for(self.run_id, timeout)
        if not first.done():
            # asyncio.wait leaves ``first`` pending on timeout (or cancellation), for a later call
            await asyncio.wait((first,), timeout=timeout)
            if not first.done():
                raise TimeoutError(f"run {self.run_id} did not finish within {timeout} s")
        text = first.result()
        self._first = None
        return result_from_status(self.run_id, text)

    async def status(self) -> WorkflowResult | None:
        return await self.client.status(self.run_id)

    async def cancel(self, reason: str = "cancelled") -> bool:
        return await self.client.cancel(self.run_id, reason)

    async def resume(
        self, node_id: str | None = None, *, output: Any = _MISSING, action: str | None = None
    ) -> str:
        return await self.client.resume(self.run_id, node_id, output=output, action=action)

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r}, blueprint={self.blueprint_id!r})"


class Client:
    """Starts runs on the workers of a queue and follows them.

    ``blueprints`` are the blueprints runs start from (mapping id -> blueprint, or a list);
    ``connection`` is a Redis URL or :class:`RedisSettings`.
    """

    def __init__(
        self,
        *,
        blueprints: Mapping[str, BlueprintSource] | Iterable[BlueprintSource] | None = None,
        connection: str | RedisSettings = "redis://127.0.0.1:6379/0",
        queue_name: str = keys.DEFAULT_QUEUE,
        run_options: RunOptions | None = None,
        coordination_store: CoordinationStore | None = None,
    ) -> None:
        self.settings = (
            connection if isinstance(connection, RedisSettings) else RedisSettings.from_url(connection)
        )
        self.runtime = FlowRuntime(blueprints=blueprints)
        self.queue_name = queue_name
        self.run_options = run_options or RunOptions()
        self.redis: Redis = self.settings.client()
        self.store: CoordinationStore = coordination_store or RedisCoordinationStore(
            self.redis, queue_name, self.run_options.queue_prefix
        )
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._waiters: dict[str, list[asyncio.Future[bytes]]] = {}
        self._subscribed: asyncio.Future[None] | None = None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------ runs
    def compiled(self, blueprint_id: str) -> CompiledBlueprint:
        bp = self.runtime.get_blueprint(blueprint_id)
        if bp is None:
            known = ", ".join(sorted(self.runtime.blueprints)) or "none"
            raise BullflowError(f"unknown blueprint id {blueprint_id!r} (known: {known})")
        return self.runtime.compile(bp)

    async def start(
        self, blueprint_id: str, context: Mapping[str, Any] | None = None, run_id: str | None = None
    ) -> RunHandle:
        """Start a run: the context (plus ``blueprintId`` and ``blueprintVersion``) is written and
        the start nodes enqueued in one script. Returns at once; ``result()`` waits."""
        compiled = self.compiled(blueprint_id)
        run_id = run_id or str(uuid.uuid4())
        pairs = _context_pairs(context)
        await self._subscribe()  # before the run exists: its status cannot be missed
        first = self._expect(run_id)
        try:
            outcome = await self.store.start_run(run_id, compiled, pairs, self.run_options)
        except BaseException:
            self._waiters.pop(run_id, None)
            raise
        self._check_started(run_id, outcome)
        return RunHandle(self, run_id, compiled.id, first)

    async def start_many(
        self, blueprint_id: str, contexts: Iterable[Mapping[str, Any] | None] | int
    ) -> list[RunHandle]:
        """Start one run per context (or ``contexts`` runs without one), as :meth:`start` does,
        with the ``startRun`` calls pipelined (:meth:`RedisCoordinationStore.start_runs`): one
        round trip per 256 runs instead of one each. Returns their handles in order."""
        compiled = self.compiled(blueprint_id)
        items = [
            (str(uuid.uuid4()), _context_pairs(context))
            for context in (itertools.repeat(None, contexts) if isinstance(contexts, int) else contexts)
        ]
        await self._subscribe()
        firsts = [self._expect(run_id) for run_id, _ in items]
        handles: list[RunHandle] = []
        try:
            if isinstance(self.store, RedisCoordinationStore):
                outcomes = await self.store.start_runs(items, compiled, self.run_options)
            else:
                outcomes = [
                    await self.store.start_run(run_id, compiled, pairs, self.run_options)
                    for run_id, pairs in items
                ]
            for (run_id, _), outcome, first in zip(items, outcomes, firsts, strict=True):
                self._check_started(run_id, outcome)
                handles.append(RunHandle(self, run_id, compiled.id, first))
        except BaseException:
            for run_id, _ in items[len(handles) :]:
                self._waiters.pop(run_id, None)
            raise
        return handles

    def _expect(self, run_id: str) -> asyncio.Future[bytes]:
        """A waiter for the run's first status, registered before the run exists."""
        first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(first)
        return first

    def _check_started(self, run_id: str, outcome: CommitResult) -> None:
        if outcome.code != ScriptCode.STORED:
            self._waiters.pop(run_id, None)
            if outcome.code == ScriptCode.ALREADY_PRESENT:
                raise BullflowError(f"a run with id {run_id!r} exists already")
            raise BullflowError(f"could not start run {run_id!r}: startRun returned {outcome.code.name}")

    def handle(self, run_id: str, blueprint_id: str = "") -> RunHandle:
        """A handle on a run started elsewhere."""
        return RunHandle(self, run_id, blueprint_id)

    async def status(self, run_id: str) -> WorkflowResult | None:
        """The run's published status, or None while it runs (or when it is unknown)."""
        raw = await cast("Any", self.redis.get(keys.status_key(run_id)))
        return None if raw is None else result_from_status(run_id, raw)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run; True when this call cancelled it, False when it had finished already."""
        outcome = await self.store.cancel_run(run_id, reason)
        if outcome.code == ScriptCode.UNKNOWN_RUN:
            raise BullflowError(f"unknown run {run_id!r}")
        return outcome.code == ScriptCode.STORED

    async def resume(
        self, run_id: str, node_id: str | None = None, *, output: Any = _MISSING, action: str | None = None
    ) -> str:
        """Resume a node that waits: it completes with ``output`` (default: its own output) and
        ``action`` chooses its edges. Returns the resumed node's id."""
        graph = await cast("Any", self.redis.hget(keys.run_key(run_id), "g"))
        if graph is None:
            raise ResumeError(f"Cannot resume: unknown run '{run_id}'.")
        payload: dict[str, Any] = {}
        if output is not _MISSING:
            payload["output"] = output
        if action is not None:
            payload["action"] = action
        code, resumed, _ = await self.store.resume_node(run_id, graph.decode(), node_id, payload)
        if code == ScriptCode.STORED and resumed is not None:
            return resumed
        if code == ScriptCode.NOT_AWAITING:
            if node_id is None:
                raise ResumeError("Cannot resume: The run is not in an awaiting state.")
            raise ResumeError(f"Cannot resume: Node '{node_id}' is not in an awaiting state.")
        if code == ScriptCode.NOT_RUNNING:
            raise ResumeError(f"Cannot resume: run '{run_id}' is not in an awaiting state (it has finished).")
        raise ResumeError(f"Cannot resume run '{run_id}': {code.name}")

    async def wait_for(self, run_id: str, timeout: float | None = None) -> WorkflowResult:
        """The run's status once published (or the one published already)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._waiters.setdefault(run_id, []).append(future)

        async def wait() -> bytes:
            await self._subscribe()
            raw = await cast("Any", self.redis.get(keys.status_key(run_id)))
            if raw is not None and not future.done():
                future.set_result(raw)
            return await future

        try:
            text = await asyncio.wait_for(wait(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise TimeoutError(f"run {run_id} did not finish within {timeout} s") from None
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None and future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(run_id, None)
        return result_from_status(run_id, text)

    # --------------------------------------------------------------------------- pub/sub
    async def _subscribe(self) -> None:
        """One pattern subscription per client (``bullflow:status:*``), made on first use: a
        status published after it is delivered to the waiters of its run; ``wait_for`` reads the
        status key after subscribing, so one published before is not missed either."""
        confirmed = self._subscribed
        if confirmed is None:
            confirmed = self._subscribed = asyncio.get_running_loop().create_future()
            self._pubsub = self.redis.pubsub()
            await self._pubsub.psubscribe(keys.STATUS_CHANNEL_PREFIX + "*")
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        await asyncio.shield(confirmed)

    async def _listen(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        prefix = keys.STATUS_CHANNEL_PREFIX
        # Without a socket timeout a read blocks until a message comes (no timer per message);
        # with one, reads wake every second so an idle subscription is not taken for a dead one.
        read_timeout = None if self.settings.socket_timeout is None else 1.0
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=read_timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("status subscription failed; subscribing again", exc_info=True)
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await pubsub.psubscribe(prefix + "*")
                for run_id in list(self._waiters):  # statuses sent while disconnected
                    with contextlib.suppress(Exception):
                        raw = await cast("Any", self.redis.get(keys.status_key(run_id)))
                        if raw is not None:
                            for future in self._waiters.pop(run_id, ()):
                                if not future.done():
                                    future.set_result(raw)
                continue
            if message is None:
                continue
            kind = message.get("type")
            if kind == "psubscribe":
                if self._subscribed is not None and not self._subscribed.done():
                    self._subscribed.set_result(None)
            elif kind == "pmessage":
                channel = message.get("channel")
                channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                # A status wakes every waiter of the run; each waits again if it wants the next.
                for future in self._waiters.pop(channel[len(prefix) :], ()):
                    if not future.done():
                        future.set_result(message["data"])
