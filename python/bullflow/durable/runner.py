"""One activation of a durable instance, as a worker runs it for an activation job: take the
instance's lease, replay ``run()`` from the top against the history read in the same round
trip, and end with one fenced script: finished (complete / errored) or suspended until its
earliest deadline. While the lease is held, a heartbeat renews it; an instance terminated or
restarted meanwhile fences the runner off and cancels its running step."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import orjson

from ..exceptions import PayloadTooLargeError, StepConfigError
from ..scripts import ScriptCode
from .entrypoint import WorkflowEntrypoint, WorkflowEvent
from .replay import _SCOPE, Fenced, Replay, Suspend
from .serialization import encode_error
from .step import WorkflowStep
from .store import DurableStore, Priority

__all__ = ["ActivationOutcome", "Runner"]

logger = logging.getLogger(__name__)

# How long an instance whose workflow class this worker does not have waits before another try.
UNKNOWN_WORKFLOW_RETRY_MS = 10_000


@dataclass(frozen=True, slots=True)
class ActivationOutcome:
    """What an activation ended with: ``status`` is the instance's status after it (or
    ``fenced`` / ``busy`` / ``not-due`` / ``unknown``), ``replays`` how often ``run`` ran."""

    status: str
    replays: int = 0


class Runner:
    """Runs activations for the workflow classes it is given (name -> class)."""

    def __init__(
        self,
        store: DurableStore,
        workflows: dict[str, type[WorkflowEntrypoint]],
        ctx: Any = None,
        env: Any = None,
    ) -> None:
        self.store = store
        self.workflows = dict(workflows)
        self.ctx = ctx
        self.env = env
        self._running: dict[str, set[tuple[asyncio.Task[Any], Replay]]] = {}

    def cancel(self, instance_id: str) -> int:
        """The instance was terminated or restarted: fence off and cancel its running replay."""
        entries = self._running.get(instance_id, set())
        for task, replay in list(entries):
            replay.fenced = True
            task.cancel()
        return len(entries)

    async def activate(self, instance_id: str) -> ActivationOutcome:
        store, settings = self.store, self.store.settings
        k = store.keys(instance_id)
        reply = await store.run(
            "activateInstance", [k.instance, k.lease, k.steps, k.log], [uuid.uuid4().hex, settings.lease_ms]
        )
        code = int(reply[0])
        if code == ScriptCode.UNKNOWN_RUN:
            logger.warning("activation job for unknown durable instance %s", instance_id)
            await store.unindex(instance_id)
            return ActivationOutcome("unknown")
        if code == ScriptCode.NOT_RUNNING:
            status = _text(reply[1])
            if status != "paused":
                await store.unindex(instance_id)
            return ActivationOutcome(status)
        if code == ScriptCode.LEASE_HELD:
            # the holder replays again before it lets go; should it have died, this nudge wakes
            # the instance once its lease has expired
            await store.enqueue(
                instance_id,
                "",
                None,
                delay_ms=int(reply[1]) + 50,
                priority=Priority.WAKE,
                job_id=f"{instance_id}-n{uuid.uuid4().hex[:12]}",
            )
            return ActivationOutcome("busy")
        if code == ScriptCode.NOTHING_DUE:
            return ActivationOutcome("not-due")
        token = _text(reply[1])
        server_now = int(reply[2])
        workflow = _text(reply[3])
        params_text = reply[4]
        created_at = int(reply[5])
        step_count = int(reply[6])
        flat = reply[8]
        records = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
        cls = self.workflows.get(workflow)
        if cls is None:
            logger.error(
                "durable instance %s runs workflow %r, which this worker does not have (it has: %s); "
                "trying again in %d s",
                instance_id,
                workflow,
                ", ".join(sorted(self.workflows)) or "none",
                UNKNOWN_WORKFLOW_RETRY_MS // 1000,
            )
            return await self._suspend(instance_id, token, server_now + UNKNOWN_WORKFLOW_RETRY_MS, 0)
        params = store.serializer.loads(params_text) if params_text else None
        event = WorkflowEvent(
            payload=params,
            instance_id=instance_id,
            timestamp=datetime.fromtimestamp(created_at / 1000, tz=timezone.utc),
        )
        replays = 0
        while True:
            replay = Replay(store, instance_id, token, server_now, records, step_count)
            replays += 1
            outcome = await self._replay(cls, event, replay)
            if outcome != "continue":
                return ActivationOutcome(outcome, replays)
            # something arrived while this runner held the lease: read the history again
            pipe = store.redis.pipeline(transaction=False)
            pipe.hgetall(k.steps)
            pipe.hget(k.instance, "step_count")
            pipe.time()
            flat_map, count, now = await pipe.execute()
            records = {_text(key): value for key, value in cast("dict[Any, Any]", flat_map).items()}
            step_count = int(count or 0)
            server_now = int(now[0]) * 1000 + int(now[1]) // 1000

    async def _replay(self, cls: type[WorkflowEntrypoint], event: WorkflowEvent, replay: Replay) -> str:
        """One run of ``run()``; returns the outcome (a status, "fenced" or "continue")."""
        instance_id = replay.instance_id
        workflow = cls(self.ctx, self.env)
        context = contextvars.copy_context()
        context.run(_SCOPE.set, replay.root)
        # the task copies the context it is created in (Python 3.10 has no create_task(context=))
        task = context.run(asyncio.get_running_loop().create_task, workflow.run(event, WorkflowStep(replay)))
        entry = (task, replay)
        self._running.setdefault(instance_id, set()).add(entry)
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(replay, task))
        output: Any = None
        error: BaseException | None = None
        suspended = False
        try:
            try:
                output = await asyncio.shield(task)
            except Suspend:
                suspended = True
            except Fenced:
                replay.fenced = True
            except asyncio.CancelledError:
                if not task.cancelled():  # this activation itself is being cancelled
                    task.cancel()
                    raise
                replay.fenced = True
            except Exception as exc:
                error = exc
            await replay.quiesce()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            entries = self._running.get(instance_id)
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del self._running[instance_id]
        if replay.fenced:
            logger.info("durable instance %s: this runner was fenced off; stopping", instance_id)
            return "fenced"
        if replay.fatal is not None:
            error, suspended = replay.fatal, False
        if suspended:
            deadline = min(replay.deadlines) if replay.deadlines else None
            outcome = await self._suspend(instance_id, replay.token, deadline, replay.now_ms())
            return outcome.status
        if error is None:
            try:
                text = replay.serialize(output, "the workflow's output")
            except (StepConfigError, PayloadTooLargeError) as exc:
                error = exc
        if error is not None:
            return await self._finish(replay, "errored", orjson.dumps(encode_error(error)).decode())
        return await self._finish(replay, "complete", text)

    async def _suspend(
        self, instance_id: str, token: str, deadline: int | None, now: int
    ) -> ActivationOutcome:
        store = self.store
        k = store.keys(instance_id)
        reply = await store.run(
            "suspendInstance",
            [k.instance, k.lease, k.log],
            [token, "" if deadline is None else str(deadline)],
        )
        code = int(reply[0])
        if code == ScriptCode.CONTINUE:
            return ActivationOutcome("continue")
        if code == ScriptCode.FENCED:
            return ActivationOutcome("fenced")
        status = _text(reply[1])
        if reply[2] is not None:
            await store.enqueue(
                instance_id, "", int(reply[2]), delay_ms=int(reply[3]), priority=Priority.WAKE
            )
            if len(reply) > 4:  # the wake-up job this one replaces
                await store.remove_job(instance_id, reply[4])
        if status == "paused":
            await store.unindex(instance_id)
        else:
            await store.index(instance_id, deadline if deadline is not None else now)
        return ActivationOutcome(status)

    async def _finish(self, replay: Replay, status: str, text: str) -> str:
        k = replay.keys
        reply = await self.store.run(
            "finishInstance",
            [k.instance, k.lease, k.steps, k.events, k.waiters, k.log],
            [replay.token, status, text, k.done],
        )
        if int(reply[0]) == ScriptCode.FENCED:
            return "fenced"
        await self.store.unindex(replay.instance_id)
        # a wake-up job still scheduled (say, the timeout of a wait an event resolved) would
        # otherwise stay in the queue until its deadline, up to a year
        await self.store.remove_job(replay.instance_id, reply[1])
        return status

    async def _heartbeat(self, replay: Replay, task: asyncio.Task[Any]) -> None:
        k = replay.keys
        every = self.store.settings.lease_ms / 3000
        while True:
            await asyncio.sleep(every)
            try:
                code = await self.store.run(
                    "renewLease", [k.instance, k.lease], [replay.token, self.store.settings.lease_ms]
                )
            except Exception:
                logger.warning("durable instance %s: lease renewal failed", replay.instance_id, exc_info=True)
                continue
            if int(code) == ScriptCode.FENCED:
                replay.fenced = True
                task.cancel()
                return


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
