"""The worker side of durable workflows: a BullMQ ``Worker`` on the activation queue whose jobs
run activations (:mod:`.runner`), a listener that cancels the steps of terminated instances, and
(optionally) the reconciler on a timer, guarded by its leader lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from bullmq import Worker  # type: ignore[import-untyped]

from ..exceptions import SettingsError
from ..fleet import DEFAULT_HEARTBEAT_INTERVAL, WorkerHeartbeat
from ..pubsub import listen_for_ids
from ..settings import DurableSettings, RedisSettings
from .entrypoint import WorkflowEntrypoint, registered_workflows, workflow_name
from .reconciler import DurableReconciler
from .runner import ActivationOutcome, Runner
from .serialization import Serializer
from .store import DurableStore

__all__ = ["WorkflowWorkers", "create_workflow_workers"]

logger = logging.getLogger(__name__)


class WorkflowWorkers:
    """Runs activations of durable instances with up to ``concurrency`` at once in this
    process. ``await start()``, then ``await close()`` (lets running activations finish) or use
    ``async with``. ``workflows`` defaults to every :class:`WorkflowEntrypoint` subclass defined
    so far. ``reconcile_interval`` (seconds, None = off) runs the reconciler in this process
    (only one process at a time does, by lease). ``heartbeat_interval`` is the seconds between
    the heartbeats that list this worker as live (:mod:`bullflow.fleet`; None: no heartbeats)."""

    def __init__(
        self,
        connection: str | RedisSettings = "redis://127.0.0.1:6379/0",
        ctx: Any = None,
        env: Any = None,
        *,
        concurrency: int = 10,
        workflows: Iterable[type[WorkflowEntrypoint]] | None = None,
        settings: DurableSettings | None = None,
        serializer: Serializer | None = None,
        reconcile_interval: float | None = 30.0,
        heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        if concurrency < 1:
            raise SettingsError(f"concurrency must be at least 1, got {concurrency}")
        self.redis_settings = (
            connection if isinstance(connection, RedisSettings) else RedisSettings.from_url(connection)
        )
        self.settings = settings or DurableSettings()
        self.concurrency = concurrency
        chosen = registered_workflows() if workflows is None else {workflow_name(c): c for c in workflows}
        self.store = DurableStore(
            self.redis_settings, self.settings, serializer, max_connections=max(32, 2 * concurrency + 8)
        )
        self.runner = Runner(self.store, chosen, ctx, env)
        self.reconciler = DurableReconciler(self.store)
        self.reconcile_interval = reconcile_interval
        self.worker: Worker | None = None
        self.activations = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False
        self.heartbeat: WorkerHeartbeat | None = None
        if heartbeat_interval:
            self.heartbeat = WorkerHeartbeat(
                self.store.redis,
                kind="durable",
                queue=self.settings.queue_name,
                concurrency=concurrency,
                uses=lambda: self.runner.workflows,
                processed=lambda: self.activations,
                interval=heartbeat_interval,
            )

    async def start(self) -> WorkflowWorkers:
        settings = self.settings
        self.worker = Worker(
            settings.queue_name,
            self._process,
            {
                "connection": self.store.bullmq_connection(),
                "prefix": settings.queue_prefix,
                "concurrency": self.concurrency,
                "lockDuration": settings.job_lock_ms,
                "stalledInterval": settings.stalled_interval_ms,
                "maxStalledCount": settings.max_stalled_count,
            },
        )
        # bullmq (3.x) never asks its blocking connection for the server version, so that
        # connection keeps capabilities that round every blocking wait up to whole seconds: a
        # delayed wake-up job (sleep, backoff, wait timeout) would start up to 1 s late
        blocking = getattr(self.worker, "blockingRedisConnection", None)
        if blocking is not None and getattr(blocking, "version", "") is None:
            with contextlib.suppress(Exception):
                await blocking.getRedisVersion()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._listen_for_cancellations()))
        if self.reconcile_interval:
            self._tasks.append(loop.create_task(self._reconcile_forever(self.reconcile_interval)))
        if self.heartbeat is not None:
            self.heartbeat.start()
        logger.info(
            "durable worker on queue %r runs %s",
            settings.queue_name,
            ", ".join(sorted(self.runner.workflows)) or "nothing",
        )
        return self

    async def _process(self, job: Any, token: str) -> str:
        data = job.data if isinstance(job.data, dict) else {}
        instance_id = data.get("instanceId")
        if not isinstance(instance_id, str) or not instance_id:
            logger.error("durable job %s has no instanceId; dropped", job.id)
            return "invalid"
        self.activations += 1
        outcome: ActivationOutcome = await self.runner.activate(instance_id)
        logger.debug(
            "durable instance %s: activation ended %s after %d replays",
            instance_id,
            outcome.status,
            outcome.replays,
        )
        return outcome.status

    async def _listen_for_cancellations(self) -> None:
        await listen_for_ids(self.store.redis, self.store.cancel_channel, self._cancel_instance)

    def _cancel_instance(self, instance_id: str) -> None:
        if self.runner.cancel(instance_id):
            logger.info(
                "durable instance %s was terminated or restarted: its replay is cancelled", instance_id
            )

    async def _reconcile_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                stats = await self.reconciler.run_once()
                if stats.requeued:
                    logger.info("durable reconciler: %s", stats)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("durable reconciler pass failed", exc_info=True)

    async def close(self, *, force: bool = False) -> None:
        """Stop taking jobs; unless ``force``, let running activations finish first."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.worker is not None:
            await self.worker.close(force)
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        await self.store.close()

    async def __aenter__(self) -> WorkflowWorkers:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def create_workflow_workers(
    connection: str | RedisSettings = "redis://127.0.0.1:6379/0",
    ctx: Any = None,
    env: Any = None,
    **options: Any,
) -> WorkflowWorkers:
    """Start durable workers in this process; ``options`` are those of :class:`WorkflowWorkers`
    (``concurrency``, ``workflows``, ``settings``, ``serializer``, ``reconcile_interval``). Close
    them with ``await workers.close()``."""
    return await WorkflowWorkers(connection, ctx, env, **options).start()
