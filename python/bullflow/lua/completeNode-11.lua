--[[
  Commits one node execution in one atomic step: the node's context writes and output, the
  inputs it hands its successors, the nodes a batch scatter added, its fan-in arrivals and skips
  (RunState semantics), the BullMQ jobs of the nodes that became ready, the run's count of
  outstanding nodes and, when that reaches zero, the run's status, published once. A replay for
  a (run, node, iteration) that was committed already, or for a run that is no longer running,
  changes nothing.

  Input:
    KEYS[1] state hash (workflow:state:<runId>)
    KEYS[2] run hash (bullflow:run:<runId>)
    KEYS[3] graph hash (bullflow:graph:<contentHash>)
    KEYS[4] status key (workflow:status:<runId>)
    KEYS[5] queue wait list
    KEYS[6] queue meta hash
    KEYS[7] queue id counter
    KEYS[8] queue active list
    KEYS[9] queue events stream
    KEYS[10] queue marker zset
    KEYS[11] queue delayed zset
    ARGV[1] run id
    ARGV[2] node index
    ARGV[3] iteration the job ran
    ARGV[4] mode: "complete" | "fallback" (the node failed, its fallback node takes over) |
            "await" (the node waits for a resume) | "sleep" (resume after ARGV extra.sleepMs)
    ARGV[5] taken edge ids, comma separated; "*" = every outgoing edge
    ARGV[6] extra JSON or "": {errors: [{nodeId, message}], awaiting: <details>, sleepMs: n,
            fetching: 1 when the caller takes the next waiting job right after this commit,
            dynamic: {gather: index or -1, workers: a list of (id, definitionJSONText) pairs,
            continuation: (id, definitionJSONText)}}
    ARGV[7] number of context writes W, then W pairs (field, JSON value; "" deletes the field)
    ARGV[8+2W] number of input writes I, then I quadruples (target index, field, JSON value,
            "1" when an edge transform produced it)
    ARGV[9+2W+4I], ARGV[10+2W+4I], ARGV[11+2W+4I] (optional) the execution's attempt number,
            when it started (ms) and, in mode "fallback", the error it failed with; they go to
            the node's task record, the run log and the metrics (includes/trackNode.lua)
  Output:
    {code, number of nodes enqueued, run status after the call}: code 1 (STORED) committed,
    0 (ALREADY_PRESENT) replay of a committed or superseded execution, -2 (NOT_RUNNING) the run
    is cancelled or finished, -5 (UNKNOWN_RUN) no such run.
]]
-- @include "callInChunks"
-- @include "loadRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "setNodeStatus"
-- @include "addToSet"
-- @include "clearNodeSets"
-- @include "readQueueMeta"
-- @include "enqueueNode"
-- @include "writeJobCounter"
-- @include "makeReady"
-- @include "resetLoopBody"
-- @include "isWaitingOn"
-- @include "resolveAt"
-- @include "propagate"
-- @include "completeNodeState"
-- @include "isJsonText"
-- @include "buildStatus"
-- @include "logRun"
-- @include "latencyBucket"
-- @include "countLatency"
-- @include "publishStatus"
-- @include "recordError"
-- @include "settleRun"
-- @include "enqueueReady"
-- @include "readTask"
-- @include "newNodeCounts"
-- @include "countNode"
-- @include "writeNodeCounts"
-- @include "trackNode"
-- @include "commitNode"

local q = { wait = KEYS[5], meta = KEYS[6], id = KEYS[7], active = KEYS[8], events = KEYS[9],
  marker = KEYS[10], delayed = KEYS[11] }
local reply = commitNode(ARGV, 0, #ARGV, KEYS[1], KEYS[2], KEYS[3], KEYS[4], q, nil, nil)
writeJobCounter(q)
return reply
