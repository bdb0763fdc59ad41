"""Every Redis key format, queue name and job naming rule bullflow uses: the wire contract that
other programs (Flowcraft's Node workers and clients, bullmq's tools) read and write. Nothing else
in the library builds a key by hand.

Flowcraft-compatible (spec §4.2, §5.2):

* ``workflow:state:<runId>`` -- HASH, the run context; each field value is ``JSON.stringify`` of the
  value (``bullflow._impl.encode_value``);
* ``workflow:status:<runId>`` -- STRING, the final status as JSON ``{status, payload?, reason?}``;
* BullMQ queue ``flowcraft-queue`` under prefix ``bull``; job name ``executeNode``; job data
  ``{runId, blueprintId, nodeId}``; job id ``<runId>_<nodeId>``.

bullflow's own:

* ``bullflow:graph:<contentHash>`` -- HASH, a compiled blueprint graph as the Lua scripts read it
  (``CompiledGraph.lua_encoding()``: ``meta`` and one field per node index) plus ``bp`` (the
  blueprint JSON the hash was taken of), ``id:<index>`` (node id), ``ix:<nodeId>`` (node index)
  and ``o:<index>`` (the node's BullMQ job options as a JSON fragment), written once per version;
* ``bullflow:run:<runId>`` -- HASH, a run's coordination state (``lua/README.md`` lists the
  fields): node statuses, fan-in arrivals, iterations, outstanding count, run status;
* ``bullflow:status:<runId>`` -- pub/sub channel: the status JSON, sent when it is written to
  ``workflow:status:<runId>`` (push for ``RunHandle.result``);
* ``bullflow:cancel`` -- pub/sub channel: the id of each cancelled run (workers signal its nodes);
* ``bullflow:lock:<name>`` -- STRING, a lease (``acquireLock``), e.g. the reconciler's per run;
* ``bullflow:runlog:<runId>`` -- STREAM, the run log (fields ``type``, ``node``, ``msg``; the entry
  id's milliseconds are its time), written by the scripts that change the run, about the newest
  1,000 entries kept; it expires with the run;
* ``bullflow:runs`` -- ZSET, the run index: run id -> start ms (``startRun``); members whose run
  hash expired are dropped by readers (``bullflow.tracking.list_runs``);
* ``bullflow:metrics`` -- HASH, counters the scripts keep: ``nc`` / ``nf`` node executions that
  completed / failed, ``nl:<le>`` and ``nls`` the node latency histogram (count per upper bound
  in ms, ``inf`` above the last; sum in ms), ``rc:<status>`` finished runs by final status,
  ``rl:<le>`` and ``rls`` the run latency histogram;
* ``bullflow:metrics:m:<minute start ms>`` -- STRING, node executions finished in that minute
  (kept an hour);
* job ids: ``<runId>_<nodeId>`` for a node's first execution, ``<runId>_<nodeId>_<n>`` for its
  n-th re-execution (loop iterations, resumes, sleeps), so every execution is its own job;
* not a key: the function library ``bullflow_<hash>`` (Redis 7+), its functions
  ``bullflow_<hash>_<scriptName>``, ``<hash>`` 16 hex digits of the SHA-1 of its text
  (``bullflow.scripts.load_library``, ``lua/README.md``).

Durable step workflows (``bullflow.durable``; ``P`` is ``DurableSettings.prefix``, default
``bullflow``). Every key of one instance carries the hash tag ``{<instanceId>}``, so the scripts
that touch them stay atomic on a Redis Cluster:

* ``P:wf:{<id>}`` -- HASH, the instance: ``status``, ``workflow``, ``version``, ``params`` (JSON),
  ``epoch`` (fencing), ``seq`` (job sequence), ``created_at``, ``updated_at``, ``finished_at``,
  ``paused_at``, ``step_count``, ``pending``, ``next_wake``, ``scheduled_wake``, ``wake_seq`` (the
  latest wake-up job), ``output`` (JSON),
  ``error`` (JSON ``{type, name, message}``), ``ttl`` (retention, s), ``activations``;
* ``P:wf:{<id>}:steps`` -- HASH, ``<kind>:<name>#<n>`` (kind ``do``, ``sleep`` or ``wait``; a step
  run inside another step's function is ``<parent key>/<kind>:<name>#<n>``) -> the step record,
  JSON opening with ``{"s":"pending"|"ok"|"err",`` (fields: ``k`` kind, ``h`` hash of kind, name
  and config, ``p``/``q`` call position and whether it was called with no other step open,
  ``cfg``, ``a`` attempts, ``r`` 1 while an attempt runs, ``w`` wake-up or deadline ms, ``ev``
  event type, ``le`` last error, ``t0``/``t1`` start/end ms, ``e`` error, ``v`` value);
* ``P:wf:{<id>}:events`` -- HASH, event type -> JSON list of buffered event texts (FIFO);
* ``P:wf:{<id>}:waiters`` -- HASH, event type -> JSON list of waiting step keys (oldest first);
* ``P:wf:{<id>}:lease`` -- STRING, the runner's lease token ``<epoch>:<uuid>`` (PX);
* ``P:wf:{<id>}:log`` -- STREAM, the instance log (``event``, ``ts``, ``step``, ``detail``);
* ``P:wf:active`` -- ZSET, instance id -> when to look at it next (the reconciler's index);
* ``P:wf:done:{<id>}`` -- pub/sub channel, the final status JSON (push for ``result()``);
* ``P:wf:cancel`` -- pub/sub channel, the id of each terminated or restarted instance;
* ``P:wf:reconciler`` -- STRING, the reconciler's leader lease;
* BullMQ queue ``bullflow-durable`` (prefix ``bull``), job name ``durable-run``, data
  ``{instanceId, workflow}``, job id ``<id>-r<seq>`` (a new id for every activation it asks for), or
  ``<id>-n<12 hex>`` for the nudge a runner turned away by the lease adds for when it expires.

Worker fleet (``bullflow.fleet``; every worker process heartbeats while it serves):

* ``bullflow:worker:<workerId>`` -- HASH, one worker process: ``id``, ``kind`` (``flow`` or
  ``durable``), ``host``, ``pid``, ``queue``, ``concurrency``, ``started`` and ``seen`` (ms),
  ``processed`` (jobs so far), ``uses`` (JSON list of the ``uses`` keys, or durable workflow
  names, it implements); PEXPIRE three heartbeat intervals, rewritten on every heartbeat;
* ``bullflow:workers`` -- ZSET, worker id -> when its last heartbeat was written (ms);
* worker ids: ``<host>:<pid>:<6 hex>``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CANCEL_CHANNEL",
    "DEFAULT_DURABLE_PREFIX",
    "DEFAULT_DURABLE_QUEUE",
    "DEFAULT_QUEUE",
    "DEFAULT_QUEUE_PREFIX",
    "DURABLE_RUN_JOB",
    "EXECUTE_NODE_JOB",
    "FUNCTION_LIBRARY_PREFIX",
    "GRAPH_PREFIX",
    "LOCK_PREFIX",
    "METRICS_KEY",
    "METRICS_MINUTE_PREFIX",
    "REGISTRY_INDEX",
    "REGISTRY_PREFIX",
    "RUN_INDEX_KEY",
    "RUN_LOG_PREFIX",
    "RUN_PREFIX",
    "STATE_PREFIX",
    "STATUS_CHANNEL_PREFIX",
    "STATUS_PREFIX",
    "WORKERS_KEY",
    "WORKER_PREFIX",
    "InstanceKeys",
    "active_index_key",
    "done_channel",
    "done_channel_pattern",
    "durable_cancel_channel",
    "durable_job_id",
    "graph_key",
    "instance_keys",
    "job_id",
    "lock_key",
    "metrics_minute_key",
    "queue_key_prefix",
    "queue_keys",
    "reconciler_lock_key",
    "registry_key",
    "run_key",
    "run_log_key",
    "state_key",
    "status_channel",
    "status_key",
    "step_key",
    "worker_key",
]

STATE_PREFIX = "workflow:state:"
STATUS_PREFIX = "workflow:status:"
GRAPH_PREFIX = "bullflow:graph:"
RUN_PREFIX = "bullflow:run:"
STATUS_CHANNEL_PREFIX = "bullflow:status:"
CANCEL_CHANNEL = "bullflow:cancel"
LOCK_PREFIX = "bullflow:lock:"
RUN_LOG_PREFIX = "bullflow:runlog:"
RUN_INDEX_KEY = "bullflow:runs"
METRICS_KEY = "bullflow:metrics"
METRICS_MINUTE_PREFIX = "bullflow:metrics:m:"
FUNCTION_LIBRARY_PREFIX = "bullflow_"  # (not a key: the Lua function library, bullflow_<hash>)
DEFAULT_QUEUE = "flowcraft-queue"
DEFAULT_QUEUE_PREFIX = "bull"
EXECUTE_NODE_JOB = "executeNode"


def state_key(run_id: str) -> str:
    """The run context hash."""
    return STATE_PREFIX + run_id


def status_key(run_id: str) -> str:
    """The run's final status."""
    return STATUS_PREFIX + run_id


def graph_key(content_hash: str) -> str:
    """A compiled blueprint graph, by the blueprint's content hash."""
    return GRAPH_PREFIX + content_hash


def run_key(run_id: str) -> str:
    """The run's coordination hash."""
    return RUN_PREFIX + run_id


def status_channel(run_id: str) -> str:
    """The pub/sub channel the run's statuses are sent on."""
    return STATUS_CHANNEL_PREFIX + run_id


def run_log_key(run_id: str) -> str:
    """The run log stream."""
    return RUN_LOG_PREFIX + run_id


def metrics_minute_key(minute_ms: int) -> str:
    """The count of node executions finished in the minute starting at ``minute_ms``."""
    return f"{METRICS_MINUTE_PREFIX}{minute_ms}"


def lock_key(name: str) -> str:
    """A lease taken with the ``acquireLock`` script."""
    return LOCK_PREFIX + name


def job_id(run_id: str, node_id: str, iteration: int = 0) -> str:
    """The BullMQ job id of a node's job in a run: Flowcraft's ``<runId>_<nodeId>`` for the first
    execution, ``<runId>_<nodeId>_<iteration>`` for later ones (the Lua scripts build the same)."""
    if iteration:
        return f"{run_id}_{node_id}_{iteration}"
    return f"{run_id}_{node_id}"


def queue_key_prefix(queue: str = DEFAULT_QUEUE, prefix: str = DEFAULT_QUEUE_PREFIX) -> str:
    """The prefix of every BullMQ key of a queue (``bull:flowcraft-queue:``)."""
    return f"{prefix}:{queue}:"


QUEUE_KEY_NAMES = (
    "wait",
    "meta",
    "id",
    "active",
    "events",
    "marker",
    "delayed",
    "completed",
    "failed",
    "stalled",
    "prioritized",
)


def queue_keys(queue: str = DEFAULT_QUEUE, prefix: str = DEFAULT_QUEUE_PREFIX) -> dict[str, str]:
    """BullMQ's keys of a queue that the scripts touch, by name (``wait`` -> ``bull:<q>:wait``)."""
    base = queue_key_prefix(queue, prefix)
    return {name: base + name for name in QUEUE_KEY_NAMES}


# ----------------------------------------------------------------------------- durable workflows
DEFAULT_DURABLE_PREFIX = "bullflow"
DEFAULT_DURABLE_QUEUE = "bullflow-durable"
DURABLE_RUN_JOB = "durable-run"


@dataclass(frozen=True, slots=True)
class InstanceKeys:
    """The keys of one durable instance (all in the hash slot of ``{<id>}``)."""

    instance: str
    lease: str
    steps: str
    events: str
    waiters: str
    log: str
    done: str


def instance_keys(instance_id: str, prefix: str = DEFAULT_DURABLE_PREFIX) -> InstanceKeys:
    """The keys of durable instance ``instance_id``."""
    base = f"{prefix}:wf:{{{instance_id}}}"
    return InstanceKeys(
        instance=base,
        lease=f"{base}:lease",
        steps=f"{base}:steps",
        events=f"{base}:events",
        waiters=f"{base}:waiters",
        log=f"{base}:log",
        done=done_channel(instance_id, prefix),
    )


def active_index_key(prefix: str = DEFAULT_DURABLE_PREFIX) -> str:
    """The reconciler's index of unfinished instances (id -> when to look next, ms)."""
    return f"{prefix}:wf:active"


def done_channel(instance_id: str, prefix: str = DEFAULT_DURABLE_PREFIX) -> str:
    """The channel an instance's final status is published on."""
    return f"{prefix}:wf:done:{{{instance_id}}}"


def done_channel_pattern(prefix: str = DEFAULT_DURABLE_PREFIX) -> str:
    """The PSUBSCRIBE pattern of every instance's done channel."""
    return f"{prefix}:wf:done:*"


def durable_cancel_channel(prefix: str = DEFAULT_DURABLE_PREFIX) -> str:
    """The channel terminated and restarted instance ids are sent on (workers cancel their steps)."""
    return f"{prefix}:wf:cancel"


def reconciler_lock_key(prefix: str = DEFAULT_DURABLE_PREFIX) -> str:
    """The durable reconciler's leader lease."""
    return f"{prefix}:wf:reconciler"


def durable_job_id(instance_id: str, seq: int) -> str:
    """The BullMQ job id of an instance's activation number ``seq``."""
    return f"{instance_id}-r{seq}"


def step_key(kind: str, name: str, occurrence: int, parent: str = "") -> str:
    """The field of a step record: ``<kind>:<name>#<n>``, under ``<parent>/`` inside a step."""
    own = f"{kind}:{name}#{occurrence}"
    return f"{parent}/{own}" if parent else own


# ---------------------------------------------------------------------------------- worker fleet
WORKER_PREFIX = "bullflow:worker:"
WORKERS_KEY = "bullflow:workers"


def worker_key(worker_id: str) -> str:
    """The heartbeat hash of one worker process."""
    return WORKER_PREFIX + worker_id


# ----------------------------------------------------------------------------- blueprint registry
REGISTRY_INDEX = "bullflow:registry"
REGISTRY_PREFIX = "bullflow:registry:bp:"


def registry_key(blueprint_id: str) -> str:
    """The versions of a registered blueprint (``bullflow:registry:bp:<id>``)."""
    return REGISTRY_PREFIX + blueprint_id
