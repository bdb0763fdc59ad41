"""The Redis side of durable workflows, shared by clients, runners and the reconciler: the Lua
scripts (each an atomic step on one instance's keys), the BullMQ activation jobs and the
reconciler's index of unfinished instances."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from bullmq import Queue  # type: ignore[import-untyped]
from redis.asyncio import Redis

from .. import keys
from ..scripts import ScriptRunner
from ..settings import DurableSettings, RedisSettings
from .serialization import JsonSerializer, Serializer

__all__ = ["DurableStore", "Priority"]

logger = logging.getLogger(__name__)


class Priority:
    """BullMQ priorities of activation jobs (lower runs first): a delivered event, then a timer,
    then a resume / restart / reconciled instance, then a new instance."""

    EVENT = 1
    WAKE = 2
    RESUME = 3
    NEW = 10


class DurableStore:
    """One redis-py client, the script runner and the BullMQ queue of activation jobs."""

    def __init__(
        self,
        redis_settings: RedisSettings,
        settings: DurableSettings,
        serializer: Serializer | None = None,
        *,
        max_connections: int = 64,
    ) -> None:
        self.redis_settings = redis_settings
        self.settings = settings
        self.serializer: Serializer = serializer or JsonSerializer()
        self.plain_json = isinstance(self.serializer, JsonSerializer)
        self.redis: Redis = redis_settings.client(max_connections=max_connections)
        self.scripts = ScriptRunner(self.redis)
        self.active_key = keys.active_index_key(settings.prefix)
        self.cancel_channel = keys.durable_cancel_channel(settings.prefix)
        self._queue: Queue | None = None

    def keys(self, instance_id: str) -> keys.InstanceKeys:
        return keys.instance_keys(instance_id, self.settings.prefix)

    def bullmq_connection(self) -> dict[str, Any]:
        """The ``connection`` dict for bullmq's Queue and Worker."""
        return {
            k: v
            for k, v in self.redis_settings.redis_kwargs().items()
            if v is not None or k == "socket_timeout"
        }

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            self._queue = Queue(
                self.settings.queue_name,
                {"connection": self.bullmq_connection(), "prefix": self.settings.queue_prefix},
            )
        return self._queue

    def job_key(self, instance_id: str, seq: int) -> str:
        """The BullMQ job hash of an activation job."""
        return (
            f"{self.settings.queue_prefix}:{self.settings.queue_name}:{keys.durable_job_id(instance_id, seq)}"
        )

    async def run(self, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        return await self.scripts.run(script, keys_, args)

    async def enqueue(
        self,
        instance_id: str,
        workflow: str,
        seq: int | None,
        *,
        delay_ms: int = 0,
        priority: int = Priority.RESUME,
        job_id: str | None = None,
    ) -> None:
        """Add activation job ``<id>-r<seq>`` (once: bullmq ignores an id it has), or the job
        ``job_id`` when given."""
        await self.queue.add(
            keys.DURABLE_RUN_JOB,
            {"instanceId": instance_id, "workflow": workflow},
            {
                "jobId": job_id or keys.durable_job_id(instance_id, int(seq or 0)),
                "delay": max(0, int(delay_ms)),
                "priority": priority,
                "removeOnComplete": True,
                "removeOnFail": True,
            },
        )

    async def index(self, instance_id: str, at_ms: int) -> None:
        """Tell the reconciler to look at the instance after ``at_ms`` (plus its grace)."""
        await cast("Any", self.redis.zadd(self.active_key, {instance_id: at_ms}))

    async def unindex(self, instance_id: str) -> None:
        await cast("Any", self.redis.zrem(self.active_key, instance_id))

    async def remove_job(self, instance_id: str, seq: Any) -> None:
        """Drop activation job ``<id>-r<seq>`` if it is still waiting (a wake-up job no longer
        needed: its instance finished or was given an earlier one); a job running now stays."""
        if seq is None:
            return
        try:
            await self.queue.remove(keys.durable_job_id(instance_id, int(seq)))
        except Exception:
            logger.warning(
                "could not remove the wake-up job of durable instance %s", instance_id, exc_info=True
            )

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
        await self.redis.aclose()
