"""Run tracking: what the HTTP API and the dashboard show of distributed runs.

Everything here is read from what the Lua scripts write in the same atomic step as the run state
(``lua/includes/trackNode.lua``, ``publishStatus.lua``): the run hash (node statuses ``s:<i>``,
task records ``k:<i>``, start ``ts``, last change ``lu``, end ``tf``), the run log stream, the run
index and the metrics hash (see :mod:`bullflow.keys`). A node that is ready is told apart as
queued or running from its BullMQ job: running while a worker holds the job's lock.

Timestamps are int milliseconds since the epoch; ``to_json()`` renders them as ISO-8601 UTC text
with milliseconds (``2026-11-22T10:00:00.123Z``).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from redis.asyncio import Redis

from . import keys

__all__ = [
    "FINAL_RUN_STATUSES",
    "LATENCY_BUCKETS_MS",
    "RUN_STATUSES",
    "TASK_STATUSES",
    "Histogram",
    "MetricsSnapshot",
    "NodeDetail",
    "RunLogEntry",
    "RunSummary",
    "RunView",
    "TaskView",
    "iso_ms",
    "list_runs",
    "node_detail",
    "read_metrics",
    "run_blueprint",
    "run_view",
]

logger = logging.getLogger(__name__)

TASK_STATUSES = ("pending", "queued", "running", "completed", "failed", "skipped", "awaiting", "cancelled")
RUN_STATUSES = ("running", "awaiting", "completed", "failed", "cancelled")
FINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled"})
# Upper bounds (ms) of the latency histograms the scripts keep (lua/includes/countLatency.lua).
LATENCY_BUCKETS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

# Node status codes of the run hash (bullflow._pure.graph) -> task status.
_STATUS_NAMES = {
    0: "pending",
    1: "queued",
    2: "running",
    3: "completed",
    4: "skipped",
    5: "failed",
    6: "awaiting",
}
_LOG_MESSAGES = {
    "run-started": "Run started",
    "run-completed": "Run completed",
    "run-failed": "Run failed",
    "run-awaiting": "Run awaits a resume",
    "run-cancelled": "Run cancelled",
    "node-completed": "Node completed",
    "node-failed": "Node failed",
    "node-fallback": "Node failed; its fallback takes over",
    "node-awaiting": "Node awaits a resume",
    "node-sleeping": "Node sleeps",
    "node-resumed": "Node resumed",
}
_SCAN_CHUNK = 200
_MAX_SCANNED = 5000  # index entries one list_runs call looks at before it returns a cursor
_MINUTES = 60


def iso_ms(ms: int | None) -> str | None:
    """``ms`` since the epoch as ISO-8601 UTC text with milliseconds, or None for None/0."""
    if not ms:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# ------------------------------------------------------------------------------------ views
@dataclass(frozen=True, slots=True)
class TaskView:
    """One node of a run: its latest execution."""

    node_id: str
    uses: str
    status: str
    attempts: int
    iteration: int
    started_at: int | None
    completed_at: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "nodeId": self.node_id,
            "uses": self.uses,
            "status": self.status,
            "attempts": self.attempts,
            "iteration": self.iteration,
            "startedAt": iso_ms(self.started_at),
            "completedAt": iso_ms(self.completed_at),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RunLogEntry:
    """An entry of the run log."""

    id: str
    type: str
    message: str
    timestamp: int
    node_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "message": self.message,
            "timestamp": iso_ms(self.timestamp),
            "nodeId": self.node_id,
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run as the runs list shows it."""

    run_id: str
    blueprint_id: str
    status: str
    started_at: int
    finished_at: int | None
    updated_at: int

    @property
    def duration_ms(self) -> int | None:
        if not self.started_at or not self.finished_at:
            return None
        return max(0, self.finished_at - self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "startedAt": iso_ms(self.started_at),
            "finishedAt": iso_ms(self.finished_at),
            "updatedAt": iso_ms(self.updated_at),
            "durationMs": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class RunView(RunSummary):
    """A run with its tasks (one per node, in graph order) and its log (oldest first)."""

    blueprint_version: str | None
    graph_hash: str
    reason: str | None
    tasks: list[TaskView]
    logs: list[RunLogEntry]

    def to_json(self) -> dict[str, Any]:
        out = RunSummary.to_json(self)
        out.update(
            blueprintVersion=self.blueprint_version,
            graphHash=self.graph_hash,
            reason=self.reason,
            tasks=[t.to_json() for t in self.tasks],
            logs=[e.to_json() for e in self.logs],
        )
        return out

    def task(self, node_id: str) -> TaskView | None:
        return next((t for t in self.tasks if t.node_id == node_id), None)


@dataclass(frozen=True, slots=True)
class NodeDetail:
    """A node of a run with its input and output (decoded JSON; None when absent)."""

    task: TaskView
    input: Any
    output: Any

    def to_json(self) -> dict[str, Any]:
        out = self.task.to_json()
        out.update(input=self.input, output=self.output)
        return out


# ----------------------------------------------------------------------------------- graphs
@dataclass(frozen=True, slots=True)
class _GraphInfo:
    ids: list[str]  # node id by index
    uses: dict[str, str]  # node id -> uses
    blueprint: dict[str, Any]


_graphs: OrderedDict[str, _GraphInfo] = OrderedDict()  # stored graphs never change: cached by hash
_GRAPH_CACHE = 256


async def _graph_info(redis: Redis, graph_hash: str) -> _GraphInfo | None:
    hit = _graphs.get(graph_hash)
    if hit is not None:
        _graphs.move_to_end(graph_hash)
        return hit
    key = keys.graph_key(graph_hash)
    meta_text, bp_text = await cast("Any", redis.hmget(key, ["meta", "bp"]))
    if meta_text is None or bp_text is None:
        return None
    count = int(json.loads(meta_text)["nodes"])
    ids_raw = await cast("Any", redis.hmget(key, [f"id:{i}" for i in range(count)])) if count else []
    blueprint = json.loads(bp_text)
    uses = {
        str(node.get("id")): str(node.get("uses", ""))
        for node in blueprint.get("nodes", [])
        if isinstance(node, dict)
    }
    info = _GraphInfo([_text(v) or "" for v in ids_raw], uses, blueprint)
    _graphs[graph_hash] = info
    while len(_graphs) > _GRAPH_CACHE:
        _graphs.popitem(last=False)
    return info


# ------------------------------------------------------------------------------------ reads
def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _json(value: Any) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return _text(value)


def _final_status(raw: Any) -> tuple[str | None, str | None]:
    """(status, reason) of a ``workflow:status:<runId>`` JSON text."""
    if raw is None:
        return None, None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    reason = doc.get("reason")
    return _text(doc.get("status")), reason if isinstance(reason, str) else None


def _log_entries(raw: list[Any]) -> list[RunLogEntry]:
    entries = []
    for entry_id, fields in raw:
        ident = _text(entry_id) or "0-0"
        kind = _text(fields.get(b"type")) or ""
        node = _text(fields.get(b"node")) or None
        message = _text(fields.get(b"msg")) or _LOG_MESSAGES.get(kind, kind)
        entries.append(RunLogEntry(ident, kind, message, _int(ident.split("-")[0]), node))
    return entries


async def run_view(redis: Redis, run_id: str, *, log_limit: int = 1000) -> RunView | None:
    """The run ``run_id`` with its tasks and its newest ``log_limit`` log entries, or None when
    Redis knows nothing of it (never started, or expired)."""
    pipe = redis.pipeline(transaction=True)  # one snapshot: the scripts write these atomically
    pipe.hgetall(keys.run_key(run_id))
    pipe.get(keys.status_key(run_id))
    pipe.xrevrange(keys.run_log_key(run_id), count=max(1, log_limit))
    pipe.hget(keys.state_key(run_id), "blueprintVersion")
    fields, status_text, log_raw, version = await pipe.execute()
    logs = _log_entries(list(reversed(log_raw)))
    final, reason = _final_status(status_text)
    if not fields:
        if final is None:
            return None
        # A run that failed before it had a coordination hash (e.g. an unknown blueprint).
        when = logs[-1].timestamp if logs else 0
        return RunView(run_id, "", final, 0, when or None, when, None, "", reason, [], logs)
    f = {k.decode(): v for k, v in fields.items()}
    graph_hash = _text(f.get("g")) or ""
    status = _text(f.get("st")) or "running"
    info = await _graph_info(redis, graph_hash)
    tasks = await _tasks(redis, run_id, f, info, status)
    updated = _int(f.get("lu"))
    finished = _int(f.get("tf")) or (updated if status in FINAL_RUN_STATUSES else 0)
    version_value = _json(version)
    return RunView(
        run_id=run_id,
        blueprint_id=_text(f.get("bp")) or "",
        status=status,
        started_at=_int(f.get("ts")),
        finished_at=finished or None,
        updated_at=updated,
        blueprint_version=None if version_value is None else str(version_value),
        graph_hash=graph_hash,
        reason=reason if status == final else None,
        tasks=tasks,
        logs=logs,
    )


async def _tasks(
    redis: Redis, run_id: str, f: dict[str, Any], info: _GraphInfo | None, run_status: str
) -> list[TaskView]:
    nstatic = _int(f.get("n"))
    total = nstatic + _int(f.get("nd"))
    queue_prefix = _text(f.get("q")) or keys.queue_key_prefix()
    rows: list[tuple[str, str, int, int, dict[str, Any]]] = []
    for i in range(total):
        if i < nstatic:
            node_id = info.ids[i] if info is not None and i < len(info.ids) else str(i)
            uses = info.uses.get(node_id, "") if info is not None else ""
        else:
            added = _json(f.get(f"d:{i}"))
            added = added if isinstance(added, dict) else {}
            node_id = str(added.get("id", i))
            definition = added.get("def")
            uses = str(definition.get("uses", "")) if isinstance(definition, dict) else ""
        record = _json(f.get(f"k:{i}"))
        rows.append(
            (
                node_id,
                uses,
                _int(f.get(f"s:{i}")),
                _int(f.get(f"it:{i}")),
                record if isinstance(record, dict) else {},
            )
        )
    # Ready nodes: queued, or running while a worker holds their job's lock.
    ready = [r for r in rows if r[2] == 1]
    jobs: list[Any] = []
    if ready:
        pipe = redis.pipeline(transaction=False)
        for node_id, _, _, iteration, _ in ready:
            job_key = queue_prefix + keys.job_id(run_id, node_id, iteration)
            pipe.hmget(job_key, ["processedOn", "atm", "failedReason"])
            pipe.exists(job_key + ":lock")
        jobs = await pipe.execute()
    live: dict[str, tuple[bool, int, int, str | None]] = {}
    for k, (node_id, *_rest) in enumerate(ready):
        (processed, made, failed), locked = jobs[2 * k], jobs[2 * k + 1]
        live[node_id] = (bool(locked), _int(processed), _int(made), _text(failed))
    run_start = _int(f.get("ts"))
    tasks = []
    for node_id, uses, code, iteration, record in rows:
        attempts = _int(record.get("a"))
        # t0 is bullmq's processedOn, from the worker's clock: never shown before the run began
        started = max(_int(record.get("t0")), run_start) if record.get("t0") else None
        ended = _int(record.get("t1")) or None
        error = record.get("e") if isinstance(record.get("e"), str) else None
        status = _STATUS_NAMES.get(code, "pending")
        if code == 3 and error:
            status = "failed"  # it failed and its fallback node took over
        elif code == 1:
            running, processed, made, failed = live[node_id]
            if run_status in FINAL_RUN_STATUSES:
                status = "cancelled" if run_status == "cancelled" else "queued"
            elif running:
                started = max(processed, run_start) if processed else None
                status, attempts, ended, error = "running", made + 1, None, None
            else:
                status, attempts, error = "queued", max(attempts, made), failed or error
        tasks.append(TaskView(node_id, uses, status, attempts, iteration, started, ended, error))
    return tasks


async def node_detail(redis: Redis, run_id: str, node_id: str) -> NodeDetail | None:
    """Node ``node_id`` of run ``run_id`` with its input and output, or None when either is
    unknown."""
    view = await run_view(redis, run_id, log_limit=1)
    if view is None:
        return None
    task = view.task(node_id)
    if task is None:
        return None
    raw_input, raw_output = await cast(
        "Any", redis.hmget(keys.state_key(run_id), [f"_inputs.{node_id}", f"_outputs.{node_id}"])
    )
    return NodeDetail(task, _json(raw_input), _json(raw_output))


async def run_blueprint(redis: Redis, run_id: str) -> dict[str, Any] | None:
    """The blueprint JSON run ``run_id`` runs (the version it is pinned to), or None."""
    graph_hash = await cast("Any", redis.hget(keys.run_key(run_id), "g"))
    if graph_hash is None:
        return None
    info = await _graph_info(redis, graph_hash.decode())
    return None if info is None else info.blueprint


async def list_runs(
    redis: Redis,
    *,
    status: str | None = None,
    blueprint_id: str | None = None,
    search: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[RunSummary], str | None]:
    """Runs from the run index, newest first, filtered by status, blueprint id and a search text
    (a case-insensitive part of the run id or the blueprint id). Returns up to ``limit`` runs and
    the cursor of the next page (None at the end). Index entries of runs that expired are dropped.
    Raises ValueError for a malformed cursor."""
    limit = max(1, min(int(limit), 500))
    needle = search.lower() if search else None
    top, after, skip = "+inf", None, 0
    if cursor:
        try:
            score_text, after = cursor.split(":", 1)
            top = str(int(score_text))
        except ValueError:
            raise ValueError(f"cursor {cursor!r} is not one this API returned") from None
    found: list[RunSummary] = []
    scanned = 0
    last: tuple[int, str] | None = None
    while len(found) < limit and scanned < _MAX_SCANNED:
        entries = await redis.zrevrangebyscore(
            keys.RUN_INDEX_KEY, top, "-inf", start=skip, num=_SCAN_CHUNK, withscores=True
        )
        if not entries:
            return found, None
        skip += len(entries)
        candidates = []
        for member, score in entries:
            run_id, started = member.decode(), int(score)
            if after is not None and str(started) == top and run_id >= after:
                continue  # at or before the cursor (same start ms, reverse id order)
            candidates.append((run_id, started))
        scanned += len(entries)
        if not candidates:
            continue
        pipe = redis.pipeline(transaction=False)
        for run_id, _ in candidates:
            pipe.hmget(keys.run_key(run_id), ["bp", "st", "ts", "tf", "lu"])
        replies = await pipe.execute()
        gone = []
        for (run_id, started), (bp, st, ts, tf, lu) in zip(candidates, replies, strict=True):
            if st is None:
                gone.append(run_id)
                continue
            last = (started, run_id)
            summary = RunSummary(
                run_id,
                _text(bp) or "",
                st.decode(),
                _int(ts) or started,
                _int(tf) or None,
                _int(lu),
            )
            if status and summary.status != status:
                continue
            if blueprint_id and summary.blueprint_id != blueprint_id:
                continue
            if needle and needle not in run_id.lower() and needle not in summary.blueprint_id.lower():
                continue
            found.append(summary)
            if len(found) == limit:
                break
        if gone:
            await redis.zrem(keys.RUN_INDEX_KEY, *gone)
            skip -= len(gone)
    if last is None:
        return found, None
    return found, f"{last[0]}:{last[1]}"


# ---------------------------------------------------------------------------------- metrics
@dataclass(frozen=True, slots=True)
class Histogram:
    """A latency histogram: cumulative counts per upper bound in seconds (the last is inf)."""

    buckets: list[tuple[float, int]]
    sum_seconds: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The counters the scripts keep (``bullflow:metrics``), read at one moment."""

    nodes_completed: int
    nodes_failed: int
    runs_finished: dict[str, int]
    node_latency: Histogram
    run_latency: Histogram
    per_minute: list[tuple[int, int]]  # (minute start ms, node executions finished), oldest first


def _histogram(fields: dict[str, bytes], name: str) -> Histogram:
    total = 0
    buckets: list[tuple[float, int]] = []
    for bound in LATENCY_BUCKETS_MS:
        total += _int(fields.get(f"{name}:{bound}"))
        buckets.append((bound / 1000, total))
    total += _int(fields.get(f"{name}:inf"))
    buckets.append((float("inf"), total))
    return Histogram(buckets, _int(fields.get(f"{name}s")) / 1000, total)


async def read_metrics(redis: Redis) -> MetricsSnapshot:
    """The metrics hash and the node counts of the last 60 minutes (by the server's clock)."""
    seconds, _ = await redis.time()
    now_ms = int(seconds) * 1000
    current = now_ms - now_ms % 60_000
    minutes = [current - 60_000 * k for k in range(_MINUTES - 1, -1, -1)]
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(keys.METRICS_KEY)
    pipe.mget([keys.metrics_minute_key(m) for m in minutes])
    raw, counts = await pipe.execute()
    fields = {k.decode(): v for k, v in raw.items()}
    runs = {name[3:]: _int(v) for name, v in fields.items() if name.startswith("rc:")}
    return MetricsSnapshot(
        nodes_completed=_int(fields.get("nc")),
        nodes_failed=_int(fields.get("nf")),
        runs_finished=runs,
        node_latency=_histogram(fields, "nl"),
        run_latency=_histogram(fields, "rl"),
        per_minute=[(m, _int(c)) for m, c in zip(minutes, counts, strict=True)],
    )
