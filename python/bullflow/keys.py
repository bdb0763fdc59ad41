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
* job ids: ``<runId>_<nodeId>`` for a node's first execution, ``<runId>_<nodeId>_<n>`` for its
  n-th re-execution (loop iterations, resumes, sleeps), so every execution is its own job.
"""

from __future__ import annotations

__all__ = [
    "CANCEL_CHANNEL",
    "DEFAULT_QUEUE",
    "DEFAULT_QUEUE_PREFIX",
    "EXECUTE_NODE_JOB",
    "GRAPH_PREFIX",
    "LOCK_PREFIX",
    "RUN_PREFIX",
    "STATE_PREFIX",
    "STATUS_CHANNEL_PREFIX",
    "STATUS_PREFIX",
    "graph_key",
    "job_id",
    "lock_key",
    "queue_key_prefix",
    "queue_keys",
    "run_key",
    "state_key",
    "status_channel",
    "status_key",
]

STATE_PREFIX = "workflow:state:"
STATUS_PREFIX = "workflow:status:"
GRAPH_PREFIX = "bullflow:graph:"
RUN_PREFIX = "bullflow:run:"
STATUS_CHANNEL_PREFIX = "bullflow:status:"
CANCEL_CHANNEL = "bullflow:cancel"
LOCK_PREFIX = "bullflow:lock:"
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
