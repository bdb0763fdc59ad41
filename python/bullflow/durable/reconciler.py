"""The durable reconciler: finds unfinished instances that nobody will activate (their job was
lost with a crashed process, or failed) and enqueues a new activation job for each. It never
runs an instance in place, and a leader lease keeps concurrent reconcilers from doing the same
work twice; a duplicate activation is harmless anyway (the instance lease admits one runner)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, cast

from .. import keys
from ..scripts import ScriptCode
from .store import DurableStore, Priority

__all__ = ["DurableReconciler", "DurableReconciliationStats"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class DurableReconciliationStats:
    """One pass: instances looked at, re-enqueued, dropped from the index (finished, paused,
    unknown), and left alone (a runner holds them, their job is queued, nothing is due)."""

    scanned: int = 0
    requeued: int = 0
    dropped: int = 0
    busy: int = 0
    queued: int = 0
    not_due: int = 0
    skipped_not_leader: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DurableReconciler:
    """``await run_once()`` looks at up to ``batch`` instances of the active index that are
    overdue by ``DurableSettings.reconcile_grace_seconds``."""

    def __init__(self, store: DurableStore, *, batch: int = 500) -> None:
        self.store = store
        self.batch = batch
        self.owner = uuid.uuid4().hex
        self.lock_key = keys.reconciler_lock_key(store.settings.prefix)

    async def run_once(self, *, grace_seconds: float | None = None) -> DurableReconciliationStats:
        store = self.store
        grace = store.settings.reconcile_grace_seconds if grace_seconds is None else grace_seconds
        stats = DurableReconciliationStats()
        redis: Any = store.redis
        lease_ms = max(1000, int(grace * 1000))
        if not await redis.set(self.lock_key, self.owner, nx=True, px=lease_ms):
            holder = await redis.get(self.lock_key)
            if holder is None or holder.decode() != self.owner:
                stats.skipped_not_leader = True
                return stats
            await redis.pexpire(self.lock_key, lease_ms)
        now = int(time.time() * 1000)
        due = await redis.zrangebyscore(
            store.active_key, "-inf", now - int(grace * 1000), start=0, num=self.batch
        )
        for raw in due:
            instance_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            stats.scanned += 1
            await self._reconcile(instance_id, stats, now)
        return stats

    async def _reconcile(self, instance_id: str, stats: DurableReconciliationStats, now: int) -> None:
        store = self.store
        redis: Any = store.redis
        k = store.keys(instance_id)
        seq_raw = await redis.hget(k.instance, "seq")
        if seq_raw is not None and await redis.exists(store.job_key(instance_id, int(seq_raw))):
            stats.queued += 1  # its latest activation job is still waiting (or running)
            await store.index(instance_id, now)
            return
        reply = await store.run("reconcileInstance", [k.instance, k.lease, k.log], [seq_raw or b"0"])
        code = int(reply[0])
        if code == ScriptCode.STORED:
            await store.enqueue(instance_id, "", int(reply[1]), priority=Priority.RESUME)
            await store.index(instance_id, now)
            stats.requeued += 1
            logger.info("durable instance %s had no activation coming: re-enqueued", instance_id)
        elif code in (ScriptCode.NOT_RUNNING, ScriptCode.UNKNOWN_RUN):
            await store.unindex(instance_id)
            stats.dropped += 1
        elif code == ScriptCode.LEASE_HELD:
            await store.index(instance_id, now + int(reply[1]))
            stats.busy += 1
        elif code == ScriptCode.NOTHING_DUE:
            wake = int(cast("Any", reply[1]) or 0)
            if wake:
                await store.index(instance_id, wake)
            else:
                await store.unindex(instance_id)  # waits for an event only: send_event wakes it
            stats.not_due += 1
        # ALREADY_PRESENT: the sequence moved on while we looked; the next pass sees it again
