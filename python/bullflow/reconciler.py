"""Finding and resuming stalled distributed runs (Flowcraft's ``createBullMQReconciler``).

A run is stalled when it is still ``running`` and nothing has changed in it (no commit: the run
hash's ``lu`` clock, not ``OBJECT IDLETIME``, which every read resets) for longer than the
threshold. For such a run, the ``readyNodes`` script lists the nodes that are ready and puts back
the jobs that were lost (deleted, or completed without a commit); a node whose job bullmq gave up
on (e.g. stalled too often) is failed with the queue's reason. Only nodes the run itself made
ready are touched, so an untaken branch is never started, and finished, awaiting and cancelled
runs are skipped. A per-run lease (``acquireLock``) keeps reconcilers in several processes from
working on the same run at once; the scripts are atomic besides.

A run a Flowcraft-style client started (context written, start jobs enqueued) whose start jobs
were lost before any worker saw them has no coordination hash yet: once its state hash has been
idle for the threshold (``OBJECT IDLETIME``) and it has no status, the reconciler starts it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import keys
from ._impl import decode_value
from .coordination import CoordinationStore, RedisCoordinationStore
from .scripts import ScriptCode

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

__all__ = ["Reconciler", "ReconciliationStats", "create_bullmq_reconciler"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReconciliationStats:
    scanned_keys: int = 0
    stalled_runs: int = 0
    reconciled_runs: int = 0
    failed_runs: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "scannedKeys": self.scanned_keys,
            "stalledRuns": self.stalled_runs,
            "reconciledRuns": self.reconciled_runs,
            "failedRuns": self.failed_runs,
        }


class Reconciler:
    """One pass over the runs with :meth:`run`; see the module docstring."""

    def __init__(
        self,
        adapter: BullMQAdapter,
        redis: Redis,
        stalled_threshold_seconds: float = 300,
        key_prefix: str = keys.STATE_PREFIX,
        scan_count: int = 100,
    ) -> None:
        self.adapter = adapter
        self.redis = redis
        self.stalled_threshold_ms = int(stalled_threshold_seconds * 1000)
        self.key_prefix = key_prefix
        self.scan_count = scan_count
        self.token = uuid.uuid4().hex
        self.store: CoordinationStore = adapter.store or RedisCoordinationStore(
            redis, adapter.queue_name, adapter.run_options.queue_prefix
        )

    async def run(self) -> ReconciliationStats:
        result = ReconciliationStats()
        now = await _server_time_ms(self.redis)
        async for raw in self.redis.scan_iter(match=self.key_prefix + "*", count=self.scan_count):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            result.scanned_keys += 1
            run_id = key[len(self.key_prefix) :]
            try:
                outcome = await self._reconcile(run_id, now)
            except Exception:
                logger.warning("reconciling run %s failed", run_id, exc_info=True)
                result.stalled_runs += 1
                result.failed_runs += 1
                continue
            if outcome is None:
                continue
            result.stalled_runs += 1
            if outcome:
                result.reconciled_runs += 1
        return result

    async def _reconcile(self, run_id: str, now: int) -> bool | None:
        """None: not stalled; True: something was put back; False: stalled, nothing to do."""
        redis = self.redis
        status, graph, changed = await cast("Any", redis.hmget(keys.run_key(run_id), ["st", "g", "lu"]))
        if status is None:
            return await self._start_orphan(run_id)
        if status != b"running" or graph is None:
            return None
        if changed is not None and now - int(changed) <= self.stalled_threshold_ms:
            return None
        ttl_ms = max(self.stalled_threshold_ms, 60_000)
        if not await self.store.acquire_lock(f"reconcile:{run_id}", self.token, ttl_ms):
            return None
        code, nodes = await self.store.ready_nodes(run_id, graph.decode())
        if code != ScriptCode.STORED:
            return None
        acted = False
        for node in nodes:
            if node.state == "requeued":
                acted = True
            elif node.state == "failed":
                reason = f"Node '{node.node_id}': its job failed in the queue: {node.failed_reason}"
                await self.store.fail_node(run_id, graph.decode(), node.index, node.iteration, reason)
                acted = True
        if acted:
            logger.info("resumed run %s: %s", run_id, ", ".join(f"{n.node_id} ({n.state})" for n in nodes))
        return acted

    async def _start_orphan(self, run_id: str) -> bool | None:
        redis = self.redis
        if await cast("Any", redis.exists(keys.status_key(run_id))):
            return None
        try:
            idle = await cast("Any", redis.object("idletime", keys.state_key(run_id)))
        except ResponseError:
            return None  # an LFU eviction policy has no idle times: leave such runs alone
        if idle is None or int(idle) * 1000 <= self.stalled_threshold_ms:
            return None
        raw = await cast("Any", redis.hget(keys.state_key(run_id), "blueprintId"))
        blueprint_id = decode_value(raw, "blueprintId") if raw is not None else None
        compiled = self.adapter.compiled_for(blueprint_id) if isinstance(blueprint_id, str) else None
        if compiled is None:
            raise LookupError(f"run {run_id}: blueprint {blueprint_id!r} is not known to this reconciler")
        if not await self.store.acquire_lock(f"reconcile:{run_id}", self.token, 60_000):
            return None
        outcome = await self.store.start_run(run_id, compiled, (), self.adapter.run_options)
        return outcome.code == ScriptCode.STORED


async def _server_time_ms(redis: Redis) -> int:
    """Redis server time in milliseconds (the clock the scripts write)."""
    seconds, micros = await cast("Any", redis.time())
    return int(seconds) * 1000 + int(micros) // 1000


def create_bullmq_reconciler(
    *,
    adapter: BullMQAdapter,
    redis: Redis,
    stalled_threshold_seconds: float = 300,
    key_prefix: str = keys.STATE_PREFIX,
    scan_count: int = 100,
) -> Reconciler:
    """Flowcraft's factory name for :class:`Reconciler`."""
    return Reconciler(adapter, redis, stalled_threshold_seconds, key_prefix, scan_count)
