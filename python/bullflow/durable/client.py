"""The client side of durable workflows: :class:`Workflow` creates and finds instances of one
workflow class; :class:`WorkflowInstance` reads and controls one instance. ``result()`` is
pushed over one pattern subscription per client, not polled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar, cast

import orjson

from .. import keys
from ..exceptions import (
    InstanceExistsError,
    InstanceNotFoundError,
    InstanceStatusError,
    PayloadTooLargeError,
    StepConfigError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from ..scripts import ScriptCode
from ..settings import DurableSettings, RedisSettings
from .entrypoint import WorkflowEntrypoint, workflow_name
from .serialization import Serializer
from .store import DurableStore, Priority

__all__ = ["InstanceStatus", "LogEntry", "Workflow", "WorkflowInstance"]

logger = logging.getLogger(__name__)

W = TypeVar("W", bound=WorkflowEntrypoint)
INSTANCE_ID = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}$")
MAX_BATCH = 100
FINAL = ("complete", "errored", "terminated")


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """An instance's status: one of queued, running, waiting, waitingForPause, paused, complete,
    errored, terminated, unknown (no such instance); its output when complete; its error
    ``{type, name, message}`` when errored; and its timestamps (UTC)."""

    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    workflow: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    step_count: int = 0


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of an instance's log: an event name (WORKFLOW_QUEUED, STEP_START,
    STEP_SUCCESS, SLEEP_START, WAIT_COMPLETE, WORKFLOW_PAUSED, ...), when, the step key it
    concerns ("" for the instance) and a detail text."""

    id: str
    event: str
    timestamp: datetime
    step: str
    detail: str


class _Client:
    """The store plus one pattern subscription to the done channels, shared by the workflows
    and instances of one :class:`Workflow`."""

    def __init__(self, store: DurableStore) -> None:
        self.store = store
        self._waiters: dict[str, list[asyncio.Future[bytes]]] = {}
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Future[None] | None = None

    async def subscribe(self) -> None:
        if self._subscribed is None:
            self._subscribed = asyncio.get_running_loop().create_future()
            self._pubsub = self.store.redis.pubsub()
            await self._pubsub.psubscribe(keys.done_channel_pattern(self.store.settings.prefix))
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        await asyncio.shield(self._subscribed)

    async def _listen(self) -> None:
        prefix = keys.done_channel("", self.store.settings.prefix)[: -len("{}")]
        pattern = keys.done_channel_pattern(self.store.settings.prefix)
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("durable result subscription failed; subscribing again", exc_info=True)
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await self._pubsub.psubscribe(pattern)
                for instance_id in list(self._waiters):  # results sent while disconnected
                    for future in self._waiters.pop(instance_id, ()):
                        if not future.done():
                            future.set_result(b"")
                continue
            if message is None:
                continue
            if message.get("type") == "psubscribe":
                if self._subscribed is not None and not self._subscribed.done():
                    self._subscribed.set_result(None)
            elif message.get("type") == "pmessage":
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                instance_id = channel[len(prefix) + 1 : -1]
                for future in self._waiters.pop(instance_id, ()):
                    if not future.done():
                        future.set_result(message["data"])

    def waiter(self, instance_id: str) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append(future)
        return future

    def forget(self, instance_id: str, future: asyncio.Future[bytes]) -> None:
        waiters = self._waiters.get(instance_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[instance_id]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self.store.close()


class Workflow(Generic[W]):
    """Creates and finds instances of the workflow class ``workflow``.

    ``connection`` is a Redis URL or :class:`RedisSettings`; ``settings`` must match the
    workers'. Close with ``await workflow.close()`` or use ``async with``."""

    def __init__(
        self,
        workflow: type[W],
        connection: str | RedisSettings = "redis://127.0.0.1:6379/0",
        *,
        settings: DurableSettings | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        if not (isinstance(workflow, type) and issubclass(workflow, WorkflowEntrypoint)):
            raise StepConfigError(f"Workflow(...) takes a WorkflowEntrypoint subclass, got {workflow!r}")
        self.workflow = workflow
        self.name = workflow_name(workflow)
        redis_settings = (
            connection if isinstance(connection, RedisSettings) else RedisSettings.from_url(connection)
        )
        self.settings = settings or DurableSettings()
        self._client = _Client(DurableStore(redis_settings, self.settings, serializer))
        self.store = self._client.store

    async def create(self, *, params: Any = None, id: str | None = None) -> WorkflowInstance:
        """Create an instance (``id`` generated when None) and queue its first activation.
        Raises :class:`InstanceExistsError` when the id is taken."""
        instance_id = self._check_id(id)
        params_text = self._params_text(params, instance_id)
        await self._create(instance_id, params_text)
        return WorkflowInstance(self._client, instance_id)

    async def create_batch(self, batch: Sequence[dict[str, Any]]) -> list[WorkflowInstance]:
        """Create up to 100 instances from ``[{"id": ..., "params": ...}, ...]`` (both keys
        optional). Every id is checked first: a duplicate in the batch or an existing instance
        raises before any is created."""
        if len(batch) > MAX_BATCH:
            raise StepConfigError(f"create_batch takes at most {MAX_BATCH} instances, got {len(batch)}")
        prepared: list[tuple[str, str]] = []
        seen: set[str] = set()
        for position, item in enumerate(batch):
            if not isinstance(item, dict) or set(item) - {"id", "params"}:
                raise StepConfigError(f"create_batch[{position}]: expected a dict with 'id' and/or 'params'")
            instance_id = self._check_id(item.get("id"))
            if instance_id in seen:
                raise InstanceExistsError(
                    f"create_batch[{position}]: id {instance_id!r} appears twice in the batch"
                )
            seen.add(instance_id)
            prepared.append((instance_id, self._params_text(item.get("params"), instance_id)))
        pipe = self.store.redis.pipeline(transaction=False)
        for instance_id, _ in prepared:
            pipe.exists(self.store.keys(instance_id).instance)
        for (instance_id, _), exists in zip(prepared, await pipe.execute(), strict=False):
            if exists:
                raise InstanceExistsError(f"workflow instance {instance_id!r} exists already")
        for instance_id, params_text in prepared:
            await self._create(instance_id, params_text)
        return [WorkflowInstance(self._client, instance_id) for instance_id, _ in prepared]

    async def get(self, id: str) -> WorkflowInstance:
        """The instance ``id``; raises :class:`InstanceNotFoundError` when there is none."""
        if not await cast("Any", self.store.redis.exists(self.store.keys(id).instance)):
            raise InstanceNotFoundError(f"workflow instance {id!r} not found")
        return WorkflowInstance(self._client, id)

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Workflow[W]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------------------------- helpers
    def _check_id(self, instance_id: Any) -> str:
        if instance_id is None:
            return f"wf_{uuid.uuid4().hex}"
        if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
            raise StepConfigError(
                f"instance id {instance_id!r}: at most 100 characters of letters, digits, '_' and '-', "
                "not starting with '-'"
            )
        return instance_id

    def _params_text(self, params: Any, instance_id: str) -> str:
        try:
            text = self.store.serializer.dumps(params)
        except (TypeError, ValueError) as err:
            raise StepConfigError(f"instance {instance_id!r}: params cannot be stored: {err}") from None
        size = len(text.encode())
        if size > self.settings.max_payload_bytes:
            raise PayloadTooLargeError(
                f"instance {instance_id!r}: params are {size} bytes, more than the limit of "
                f"{self.settings.max_payload_bytes}"
            )
        return text

    async def _create(self, instance_id: str, params_text: str) -> None:
        store = self.store
        k = store.keys(instance_id)
        # indexed first (same round trip, in order): a crash before the job is added leaves an
        # instance the reconciler finds
        pipe = store.redis.pipeline(transaction=False)
        pipe.zadd(store.active_key, {instance_id: _local_ms()})
        args = [self.name, self.workflow.version, params_text, self.settings.retention_seconds]
        store.scripts.queue(pipe, "createInstance", [k.instance, k.log], args)
        indexed, reply = await pipe.execute(raise_on_error=False)
        if isinstance(indexed, Exception):
            raise indexed
        if isinstance(reply, Exception):
            if not store.scripts.is_missing(reply):
                raise reply
            reply = await store.run("createInstance", [k.instance, k.log], args)
        if int(reply[0]) != ScriptCode.STORED:
            raise InstanceExistsError(f"workflow instance {instance_id!r} exists already")
        await store.enqueue(instance_id, self.name, int(reply[1]), priority=Priority.NEW)


class WorkflowInstance:
    """One durable instance: read its status, log and result; pause, resume, terminate,
    restart it; send it events."""

    def __init__(self, client: _Client, instance_id: str) -> None:
        self._client = client
        self.store = client.store
        self.id = instance_id
        self.keys = self.store.keys(instance_id)

    def __repr__(self) -> str:
        return f"WorkflowInstance({self.id!r})"

    async def status(self) -> InstanceStatus:
        """The instance's status (``unknown`` when it does not exist)."""
        f = await cast(
            "Any",
            self.store.redis.hmget(
                self.keys.instance,
                [
                    "status",
                    "output",
                    "error",
                    "workflow",
                    "created_at",
                    "updated_at",
                    "finished_at",
                    "step_count",
                ],
            ),
        )
        if f[0] is None:
            return InstanceStatus("unknown")
        return InstanceStatus(
            status=f[0].decode(),
            output=self.store.serializer.loads(f[1]) if f[1] is not None else None,
            error=orjson.loads(f[2]) if f[2] is not None else None,
            workflow=f[3].decode() if f[3] is not None else None,
            created_at=_time(f[4]),
            updated_at=_time(f[5]),
            finished_at=_time(f[6]),
            step_count=int(f[7] or 0),
        )

    async def pause(self) -> str:
        """Pause: a running instance stops at its next step boundary (``waitingForPause``, then
        ``paused``), a queued or waiting one at once. Returns the new status. Raises
        :class:`InstanceStatusError` for a finished instance."""
        k = self.keys
        reply = await self.store.run("pauseInstance", [k.instance, k.lease, k.log], [])
        return self._status_reply(reply, "pause")

    async def resume(self) -> str:
        """Resume a paused instance (pending timers move later by the time spent paused) or
        cancel a pause not yet taken. Returns the new status."""
        k = self.keys
        reply = await self.store.run("resumeInstance", [k.instance, k.lease, k.steps, k.log], [])
        status = self._status_reply(reply, "resume")
        if reply[2] is not None:
            await self.store.index(self.id, _local_ms())
            await self.store.enqueue(self.id, "", int(reply[2]), priority=Priority.RESUME)
        return status

    async def terminate(self) -> None:
        """Terminate: the instance ends ``terminated``; a runner still working is fenced off and
        its running step cancelled. Raises :class:`InstanceStatusError` when it has finished."""
        k = self.keys
        reply = await self.store.run(
            "terminateInstance",
            [k.instance, k.lease, k.steps, k.events, k.waiters, k.log],
            [k.done, self.store.cancel_channel, self.id],
        )
        code = int(reply[0])
        if code == ScriptCode.UNKNOWN_RUN:
            raise InstanceNotFoundError(f"workflow instance {self.id!r} not found")
        if code == ScriptCode.WRONG_STATUS:
            status = (await self.status()).status
            raise InstanceStatusError(
                f"workflow instance {self.id!r} cannot be terminated: it is {status}", status
            )
        await self.store.unindex(self.id)
        # its wake-up job, if one is scheduled, is not needed any more
        await self.store.remove_job(self.id, reply[1])

    async def restart(self) -> None:
        """Run the instance again from the top with the same params: its history, buffered
        events, waiters and attempt counts are cleared; a runner still working is fenced off."""
        k = self.keys
        await self.store.index(self.id, _local_ms())
        reply = await self.store.run(
            "restartInstance",
            [k.instance, k.lease, k.steps, k.events, k.waiters, k.log],
            [self.store.cancel_channel, self.id],
        )
        if int(reply[0]) == ScriptCode.UNKNOWN_RUN:
            await self.store.unindex(self.id)
            raise InstanceNotFoundError(f"workflow instance {self.id!r} not found")
        await self.store.enqueue(self.id, "", int(reply[1]), priority=Priority.RESUME)

    async def send_event(self, type: str, payload: Any = None) -> bool:
        """Send an event: the oldest step waiting for ``type`` gets it (and the instance wakes),
        or it is buffered for the next wait. True when a waiting step took it. Raises
        :class:`InstanceStatusError` when the instance has finished."""
        if not isinstance(type, str) or not type or len(type) > 256:
            raise StepConfigError("send_event: type must be a non-empty string of at most 256 characters")
        try:
            payload_text = self.store.serializer.dumps(payload)
        except (TypeError, ValueError) as err:
            raise StepConfigError(f"send_event {type!r}: the payload cannot be stored: {err}") from None
        if len(payload_text.encode()) > self.store.settings.max_payload_bytes:
            raise PayloadTooLargeError(
                f"send_event {type!r}: the payload is larger than {self.store.settings.max_payload_bytes} bytes"
            )
        now = await _server_ms(self.store)
        event = f'{{"type":{orjson.dumps(type).decode()},"timestamp":{now},"payload":{payload_text}}}'
        k = self.keys
        reply = await self.store.run(
            "sendEvent", [k.instance, k.lease, k.steps, k.events, k.waiters, k.log], [type, event]
        )
        code = int(reply[0])
        if code == ScriptCode.UNKNOWN_RUN:
            raise InstanceNotFoundError(f"workflow instance {self.id!r} not found")
        if code == ScriptCode.WRONG_STATUS:
            raise InstanceStatusError(
                f"workflow instance {self.id!r} cannot receive events: it is {reply[1].decode()}",
                reply[1].decode(),
            )
        if reply[2] is not None:
            await self.store.index(self.id, now)
            await self.store.enqueue(self.id, "", int(reply[2]), priority=Priority.EVENT)
        return reply[1] is not None

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the instance to finish and return its output. Raises
        :class:`WorkflowFailedError` (errored), :class:`WorkflowTerminatedError`, or
        ``TimeoutError`` after ``timeout`` seconds."""
        client = self._client
        await client.subscribe()  # before reading: a status published after the read is not missed
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            future = client.waiter(self.id)
            try:
                status = await self.status()
                if status.status in FINAL:
                    return self._outcome(status)
                if status.status == "unknown":
                    raise InstanceNotFoundError(f"workflow instance {self.id!r} not found")
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError(f"workflow instance {self.id} did not finish within {timeout} s")
                try:
                    await asyncio.wait_for(asyncio.shield(future), left)
                except (asyncio.TimeoutError, TimeoutError):
                    raise TimeoutError(
                        f"workflow instance {self.id} did not finish within {timeout} s"
                    ) from None
            finally:
                client.forget(self.id, future)

    def _outcome(self, status: InstanceStatus) -> Any:
        if status.status == "complete":
            return status.output
        if status.status == "errored":
            raise WorkflowFailedError(self.id, status.error or {})
        raise WorkflowTerminatedError(f"workflow instance {self.id!r} was terminated")

    async def logs(self, count: int | None = None) -> list[LogEntry]:
        """The instance's log, oldest first (the newest ``count`` entries when given)."""
        redis: Any = self.store.redis
        if count is None:
            rows = await redis.xrange(self.keys.log)
        else:
            rows = list(reversed(await redis.xrevrange(self.keys.log, count=count)))
        out = []
        for entry_id, fields in rows:
            out.append(
                LogEntry(
                    id=entry_id.decode(),
                    event=fields[b"event"].decode(),
                    timestamp=_time(fields[b"ts"]) or datetime.fromtimestamp(0, tz=timezone.utc),
                    step=fields.get(b"step", b"").decode(),
                    detail=fields.get(b"detail", b"").decode(),
                )
            )
        return out

    def _status_reply(self, reply: Any, operation: str) -> str:
        code = int(reply[0])
        if code == ScriptCode.UNKNOWN_RUN:
            raise InstanceNotFoundError(f"workflow instance {self.id!r} not found")
        status = reply[1].decode()
        if code == ScriptCode.WRONG_STATUS:
            raise InstanceStatusError(
                f"workflow instance {self.id!r} cannot {operation}: it is {status}", status
            )
        return str(status)


def _local_ms() -> int:
    """Now, for the reconciler's index (it compares with its own clock, with a grace period)."""
    return int(time.time() * 1000)


async def _server_ms(store: DurableStore) -> int:
    seconds, micros = await cast("Any", store.redis.time())
    return int(seconds) * 1000 + int(micros) // 1000


def _time(raw: Any) -> datetime | None:
    if raw is None:
        return None
    return datetime.fromtimestamp(int(raw) / 1000, tz=timezone.utc)
