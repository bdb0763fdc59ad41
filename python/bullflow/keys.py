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
  (``CompiledGraph.lua_encoding()``), written once per blueprint version.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_QUEUE_PREFIX",
    "EXECUTE_NODE_JOB",
    "GRAPH_PREFIX",
    "STATE_PREFIX",
    "STATUS_PREFIX",
    "graph_key",
    "job_id",
    "queue_key_prefix",
    "state_key",
    "status_key",
]

STATE_PREFIX = "workflow:state:"
STATUS_PREFIX = "workflow:status:"
GRAPH_PREFIX = "bullflow:graph:"
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


def job_id(run_id: str, node_id: str) -> str:
    """The BullMQ job id of a node's job in a run (Flowcraft's ``<runId>_<nodeId>``)."""
    return f"{run_id}_{node_id}"


def queue_key_prefix(queue: str = DEFAULT_QUEUE, prefix: str = DEFAULT_QUEUE_PREFIX) -> str:
    """The prefix of every BullMQ key of a queue (``bull:flowcraft-queue:``)."""
    return f"{prefix}:{queue}:"
