"""Prometheus text exposition (format 0.0.4) of the run metrics the coordination scripts keep
(``bullflow.tracking.read_metrics``), the depths of the BullMQ queues and the live workers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from .. import keys
from ..tracking import Histogram, MetricsSnapshot

__all__ = ["QUEUE_STATES", "QueueDepth", "queue_depths", "render_metrics"]

QUEUE_STATES = ("waiting", "active", "delayed", "prioritized", "completed", "failed")
RUN_FINAL_STATUSES = ("completed", "failed", "cancelled")
WORKER_KINDS = ("flow", "durable")


@dataclass(frozen=True, slots=True)
class QueueDepth:
    name: str
    counts: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **{state: int(self.counts.get(state, 0)) for state in QUEUE_STATES}}


async def queue_depths(redis: Redis, queues: Sequence[tuple[str, str]]) -> list[QueueDepth]:
    """Jobs per state of each ``(queue name, key prefix)``, in one round trip: waiting is the
    ``wait`` and ``paused`` lists, active the ``active`` list, the others BullMQ's sorted sets."""
    pipe = redis.pipeline(transaction=False)
    for name, prefix in queues:
        base = keys.queue_key_prefix(name, prefix)
        pipe.llen(base + "wait")
        pipe.llen(base + "paused")
        pipe.llen(base + "active")
        for zset in ("delayed", "prioritized", "completed", "failed"):
            pipe.zcard(base + zset)
    replies = [int(r) for r in await cast("Any", pipe.execute())]
    found = []
    for i, (name, _) in enumerate(queues):
        wait, paused, active, delayed, prioritized, completed, failed = replies[7 * i : 7 * i + 7]
        found.append(
            QueueDepth(
                name,
                {
                    "waiting": wait + paused,
                    "active": active,
                    "delayed": delayed,
                    "prioritized": prioritized,
                    "completed": completed,
                    "failed": failed,
                },
            )
        )
    return found


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels or {})} {_number(value)}")

    def histogram(self, name: str, help_text: str, histogram: Histogram) -> None:
        self.family(name, "histogram", help_text)
        saw_inf = False
        for bound, count in histogram.buckets:
            saw_inf = saw_inf or math.isinf(bound)
            self.sample(f"{name}_bucket", count, {"le": _number(bound)})
        if not saw_inf:
            self.sample(f"{name}_bucket", histogram.count, {"le": "+Inf"})
        self.sample(f"{name}_sum", histogram.sum_seconds)
        self.sample(f"{name}_count", histogram.count)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(
    snapshot: MetricsSnapshot, queues: Iterable[QueueDepth], workers: Mapping[str, int]
) -> str:
    """The exposition text: counters, histograms (seconds) and gauges."""
    out = _Writer()
    out.family("bullflow_nodes_completed_total", "counter", "Node executions that completed.")
    out.sample("bullflow_nodes_completed_total", snapshot.nodes_completed)
    out.family("bullflow_nodes_failed_total", "counter", "Node executions that failed (after their retries).")
    out.sample("bullflow_nodes_failed_total", snapshot.nodes_failed)
    out.family("bullflow_runs_finished_total", "counter", "Runs that finished, by final status.")
    statuses = dict.fromkeys(RUN_FINAL_STATUSES, 0) | dict(snapshot.runs_finished)
    for status, count in sorted(statuses.items()):
        out.sample("bullflow_runs_finished_total", count, {"status": status})
    out.histogram(
        "bullflow_node_duration_seconds", "Time from a node's start to its completion.", snapshot.node_latency
    )
    out.histogram(
        "bullflow_run_duration_seconds", "Time from a run's start to its end.", snapshot.run_latency
    )
    out.family("bullflow_queue_jobs", "gauge", "BullMQ jobs per queue and state.")
    for depth in queues:
        for state in QUEUE_STATES:
            out.sample(
                "bullflow_queue_jobs", depth.counts.get(state, 0), {"queue": depth.name, "state": state}
            )
    out.family("bullflow_workers_active", "gauge", "Worker processes with a recent heartbeat, by kind.")
    for kind, count in sorted((dict.fromkeys(WORKER_KINDS, 0) | dict(workers)).items()):
        out.sample("bullflow_workers_active", count, {"kind": kind})
    return out.text()
