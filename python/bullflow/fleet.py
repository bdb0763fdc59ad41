"""The worker fleet: every worker process heartbeats while it serves, so any process (the HTTP API,
``bullflow`` tools) can list the live workers, what they implement and how much they did.

A :class:`WorkerHeartbeat` rewrites the hash ``bullflow:worker:<workerId>`` every ``interval``
seconds with a PEXPIRE of three intervals, and scores the worker id in the ZSET
``bullflow:workers`` with the time of that heartbeat (``keys.py`` documents both). A worker that
stops cleanly removes both; one that dies disappears when its hash expires.
:func:`live_workers` reads them and drops the index entries of workers that are gone.

Redis errors while heartbeating are logged (once per outage) and retried; they never stop the
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

import orjson

from . import keys
from .exceptions import SettingsError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "MAX_HEARTBEAT_INTERVAL",
    "WORKER_KINDS",
    "WorkerHeartbeat",
    "WorkerInfo",
    "live_workers",
    "new_worker_id",
]

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL = 2.0
"""Seconds between two heartbeats of a worker; its hash expires after three."""
MIN_HEARTBEAT_INTERVAL = 0.05
MAX_HEARTBEAT_INTERVAL = 60.0
TTL_INTERVALS = 3
WORKER_KINDS = ("flow", "durable")
STALE_AFTER_MS = int(TTL_INTERVALS * MAX_HEARTBEAT_INTERVAL * 1000)
"""Index entries older than the longest possible TTL are dropped without looking at their hash."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    """``2026-11-22T10:00:00.123Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def new_worker_id(host: str | None = None, pid: int | None = None) -> str:
    """``<host>:<pid>:<6 hex>``: unique even when a pid is reused on the same host."""
    return f"{host or socket.gethostname()}:{os.getpid() if pid is None else pid}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker process, as its last heartbeat described it (timestamps in ms)."""

    id: str
    kind: str
    host: str
    pid: int
    queue: str
    concurrency: int
    started_at: int
    last_seen: int
    processed: int
    uses: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "host": self.host,
            "pid": self.pid,
            "queue": self.queue,
            "concurrency": self.concurrency,
            "startedAt": _iso(self.started_at),
            "lastSeen": _iso(self.last_seen),
            "processed": self.processed,
            "uses": list(self.uses),
        }

    @classmethod
    def from_hash(cls, fields: dict[Any, Any]) -> WorkerInfo:
        """From the heartbeat hash (bytes or str fields); ValueError/KeyError when malformed."""
        text = {_text(k): _text(v) for k, v in fields.items()}
        uses = orjson.loads(text.get("uses") or "[]")
        if not isinstance(uses, list):
            raise ValueError("uses is not a JSON list")
        return cls(
            id=text["id"],
            kind=text["kind"],
            host=text["host"],
            pid=int(text["pid"]),
            queue=text["queue"],
            concurrency=int(text["concurrency"]),
            started_at=int(text["started"]),
            last_seen=int(text["seen"]),
            processed=int(text.get("processed") or 0),
            uses=[str(u) for u in uses],
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WorkerHeartbeat:
    """Heartbeats of one worker process on ``redis`` (a ``redis.asyncio.Redis`` the caller owns
    and closes after :meth:`stop`).

    ``kind`` is ``"flow"`` (a :class:`~bullflow.adapter.BullMQAdapter`) or ``"durable"``;
    ``uses`` the ``uses`` keys (or durable workflow names) the worker implements and
    ``processed`` the number of jobs it took so far -- both callables are read at every
    heartbeat. :meth:`start` (inside a running loop) writes the first heartbeat at once and then
    one every ``interval`` seconds; :meth:`stop` ends them and removes the worker's keys.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        kind: str,
        queue: str,
        concurrency: int,
        uses: Callable[[], Iterable[str]] | Iterable[str] = (),
        processed: Callable[[], int] | None = None,
        interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        worker_id: str | None = None,
    ) -> None:
        if kind not in WORKER_KINDS:
            raise SettingsError(f"worker kind must be one of {', '.join(WORKER_KINDS)}, not {kind!r}")
        if not MIN_HEARTBEAT_INTERVAL <= interval <= MAX_HEARTBEAT_INTERVAL:
            raise SettingsError(
                f"heartbeat interval must be between {MIN_HEARTBEAT_INTERVAL} and "
                f"{MAX_HEARTBEAT_INTERVAL:g} seconds, got {interval}"
            )
        self.redis = redis
        self.kind = kind
        self.queue = queue
        self.concurrency = concurrency
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.worker_id = worker_id or new_worker_id(self.host, self.pid)
        self.key = keys.worker_key(self.worker_id)
        self.interval = interval
        self.ttl_ms = max(1, int(interval * TTL_INTERVALS * 1000))
        self.started_at = _now_ms()
        self._uses = uses
        self._processed = processed
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def uses(self) -> list[str]:
        source = self._uses() if callable(self._uses) else self._uses
        return sorted({str(u) for u in source})

    async def beat(self) -> None:
        """Write one heartbeat (the whole hash, its expiry and the index entry)."""
        now = _now_ms()
        processed = self._processed() if self._processed is not None else 0
        mapping = {
            "id": self.worker_id,
            "kind": self.kind,
            "host": self.host,
            "pid": str(self.pid),
            "queue": self.queue,
            "concurrency": str(self.concurrency),
            "started": str(self.started_at),
            "seen": str(now),
            "processed": str(processed),
            "uses": orjson.dumps(self.uses()).decode(),
        }
        # not a transaction: the two keys may sit in different slots of a Redis Cluster
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.key, mapping=cast("Any", mapping))
        pipe.pexpire(self.key, self.ttl_ms)
        pipe.zadd(keys.WORKERS_KEY, {self.worker_id: now})
        await pipe.execute()

    def start(self) -> None:
        """Start heartbeating (the first heartbeat is written at once, in the background)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat_forever())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
                if self._failing:
                    logger.info("worker %s: heartbeats written again", self.worker_id)
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not self._failing:
                    logger.warning(
                        "worker %s: cannot write its heartbeat (%s: %s); retrying",
                        self.worker_id,
                        type(err).__name__,
                        err,
                    )
                self._failing = True
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop heartbeating and remove this worker's hash and index entry."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(self.key)
            pipe.zrem(keys.WORKERS_KEY, self.worker_id)
            await pipe.execute()
        except Exception as err:
            logger.warning(
                "worker %s: cannot remove its heartbeat (%s); it expires in %.1f s",
                self.worker_id,
                err,
                self.ttl_ms / 1000,
            )

    async def __aenter__(self) -> WorkerHeartbeat:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def live_workers(redis: Redis) -> list[WorkerInfo]:
    """The workers whose heartbeat is still within its TTL, by queue, host and pid. Index entries
    of workers whose hash expired (they died without stopping) are removed on the way."""
    now = _now_ms()
    await cast("Any", redis.zremrangebyscore(keys.WORKERS_KEY, "-inf", now - STALE_AFTER_MS))
    members = await cast("Any", redis.zrange(keys.WORKERS_KEY, 0, -1))
    if not members:
        return []
    ids = [_text(m) for m in members]
    pipe = redis.pipeline(transaction=False)
    for worker_id in ids:
        pipe.hgetall(keys.worker_key(worker_id))
    hashes = await pipe.execute()
    workers: list[WorkerInfo] = []
    gone: list[str] = []
    for worker_id, fields in zip(ids, hashes, strict=True):
        if not fields:
            gone.append(worker_id)
            continue
        try:
            workers.append(WorkerInfo.from_hash(fields))
        except (KeyError, ValueError) as err:  # orjson.JSONDecodeError is a ValueError
            logger.debug("worker %s: unreadable heartbeat hash skipped (%s)", worker_id, err)
    if gone:
        await cast("Any", redis.zrem(keys.WORKERS_KEY, *gone))
    workers.sort(key=lambda w: (w.queue, w.host, w.pid, w.id))
    return workers
