--[[
  Records that a node failed for good (its last attempt failed and it has no fallback): the node
  is marked failed, its error joins the run's error list, nothing after it runs, and when no
  other node is outstanding the run ends 'failed' (published once). A replay for an execution
  that was settled already, or for a run that is no longer running, changes nothing.

  Input:
    KEYS[1] state hash (workflow:state:<runId>)
    KEYS[2] run hash (bullflow:run:<runId>)
    KEYS[3] graph hash (bullflow:graph:<contentHash>)
    KEYS[4] status key (workflow:status:<runId>)
    ARGV[1] run id
    ARGV[2] node index
    ARGV[3] iteration the job ran
    ARGV[4] error message
    ARGV[5] attempt number of the execution (optional, 0 = unknown)
    ARGV[6] when the execution started, ms (optional, 0 = unknown)
    ARGV[7] the error as the node's task record shows it, e.g. with its cause (optional,
            default ARGV[4])
  Output:
    {code, run status after the call}: 1 (STORED), 0 (ALREADY_PRESENT), -2 (NOT_RUNNING),
    -5 (UNKNOWN_RUN). The node's task record, the run log and the metrics are written with it
    (includes/trackNode.lua).
]]
-- @include "loadRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "setNodeStatus"
-- @include "isJsonText"
-- @include "buildStatus"
-- @include "logRun"
-- @include "latencyBucket"
-- @include "countLatency"
-- @include "publishStatus"
-- @include "recordError"
-- @include "settleRun"
-- @include "readTask"
-- @include "newNodeCounts"
-- @include "countNode"
-- @include "writeNodeCounts"
-- @include "trackNode"

local run = loadRun(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
if not run then
  return { -5, false }
end
if run.status ~= "running" then
  return { -2, run.status }
end
local i = tonumber(ARGV[2])
if nodeStatus(run, i) ~= 1 or tonumber(redis.call("HGET", run.runKey, "it:" .. i) or "0") ~= tonumber(ARGV[3]) then
  return { 0, run.status }
end
setNodeStatus(run, i, 5)
redis.call("HDEL", run.runKey, "rs:" .. i)
redis.call("HINCRBY", run.runKey, "out", -1)
recordError(run, nodeRecord(run, i).id, ARGV[4])
local detail = ARGV[7]
if not detail or detail == "" then
  detail = ARGV[4]
end
trackNode(run, i, "node-failed", readTask(5, ARGV), detail, "failed")
local status = settleRun(run)
return { 1, status or run.status }
