--[[
  Resumes a node that waits (a 'wait' node, or a subflow waiting inside): the node is queued
  again, under a new iteration, carrying the resume payload (output and action) that its job
  completes it with; the awaiting markers leave the context and the 'awaiting' status is
  cleared. Only a node that is awaiting can be resumed, so a second resume changes nothing.

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
    ARGV[2] node id to resume ("" = the first awaiting node)
    ARGV[3] resume payload JSON ({"output": ..., "action": ...}; both optional)
  Output:
    {code, node id, job id}: 1 (STORED) resumed, -6 (NOT_AWAITING) the node is not awaiting,
    -2 (NOT_RUNNING) the run finished, -5 (UNKNOWN_RUN) no such run.
]]
-- @include "loadRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "setNodeStatus"
-- @include "readQueueMeta"
-- @include "enqueueNode"
-- @include "writeJobCounter"
-- @include "logRun"

local run = loadRun(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
if not run then
  return { -5, false, false }
end
if run.status ~= "running" and run.status ~= "awaiting" then
  return { -2, false, false }
end
local ids = cjson.decode(redis.call("HGET", run.stateKey, "_awaitingNodeIds") or "[]")
local nodeId = ARGV[2]
if nodeId == "" then
  nodeId = ids[1]
end
local position = nil
for k, id in ipairs(ids) do
  if id == nodeId then
    position = k
  end
end
local index = nodeId and (redis.call("HGET", run.graphKey, "ix:" .. nodeId)
  or redis.call("HGET", run.runKey, "dx:" .. nodeId))
if not position or not index then
  return { -6, nodeId or false, false }
end
local i = tonumber(index)
if nodeStatus(run, i) ~= 6 then
  return { -6, nodeId, false }
end
table.remove(ids, position)
local detailsText = redis.call("HGET", run.stateKey, "_awaitingDetails")
if #ids == 0 then
  redis.call("HDEL", run.stateKey, "_awaitingNodeIds", "_awaitingDetails")
else
  local details = detailsText and cjson.decode(detailsText) or {}
  details[nodeId] = nil
  redis.call("HSET", run.stateKey, "_awaitingNodeIds", cjson.encode(ids), "_awaitingDetails", cjson.encode(details))
end
setNodeStatus(run, i, 1)
local it = redis.call("HINCRBY", run.runKey, "it:" .. i, 1)
redis.call("HSET", run.runKey, "rs:" .. i, ARGV[3], "st", "running", "lu", run.now)
redis.call("HINCRBY", run.runKey, "aw", -1)
redis.call("HINCRBY", run.runKey, "out", 1)
redis.call("DEL", run.statusKey)
local q = { wait = KEYS[5], meta = KEYS[6], id = KEYS[7], active = KEYS[8], events = KEYS[9],
  marker = KEYS[10], delayed = KEYS[11] }
local jobId = enqueueNode(run, q, i, it, 0)
logRun(run, "node-resumed", nodeId, "")
writeJobCounter(q)
return { 1, nodeId, jobId }
