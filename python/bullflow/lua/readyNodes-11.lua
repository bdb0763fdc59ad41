--[[
  For the reconciler: lists the nodes of a running run that are ready (queued or running) with
  the state of their BullMQ job, and puts back the jobs that are gone: a ready node whose job
  record was deleted, or whose job completed without committing it, is enqueued again (same job
  id). Nodes that were never made ready (untaken branches, successors of failed nodes) are never
  touched.

  Input:
    KEYS[1] run hash (bullflow:run:<runId>)
    KEYS[2] graph hash (bullflow:graph:<contentHash>)
    KEYS[3] queue wait list
    KEYS[4] queue meta hash
    KEYS[5] queue id counter
    KEYS[6] queue active list
    KEYS[7] queue events stream
    KEYS[8] queue marker zset
    KEYS[9] queue delayed zset
    KEYS[10] queue completed zset
    KEYS[11] queue failed zset
    ARGV[1] run id
  Output:
    {code, {{node index, node id, iteration, job id, state, failed reason}, ...}}: state is
    "queued" (the job exists and is pending or active), "requeued" (this call enqueued it again)
    or "failed" (bullmq gave up on the job; the caller fails the node). Code 1 (STORED), -2
    (NOT_RUNNING) the run is not running, -5 (UNKNOWN_RUN) no such run.
]]
-- @include "loadRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "readQueueMeta"
-- @include "enqueueNode"
-- @include "writeJobCounter"

local run = loadRun(nil, KEYS[1], KEYS[2], nil, ARGV[1])
if not run then
  return { -5, {} }
end
if run.status ~= "running" then
  return { -2, {} }
end
local q = { wait = KEYS[3], meta = KEYS[4], id = KEYS[5], active = KEYS[6], events = KEYS[7],
  marker = KEYS[8], delayed = KEYS[9] }
local out = {}
for i = 0, run.nstatic + run.ndynamic - 1 do
  if nodeStatus(run, i) == 1 then
    local rec = nodeRecord(run, i)
    local it = tonumber(redis.call("HGET", run.runKey, "it:" .. i) or "0")
    local jobId = run.id .. "_" .. rec.id
    if it > 0 then
      jobId = jobId .. "_" .. it
    end
    local jobKey = run.queue .. jobId
    local state = "queued"
    local reason = ""
    if redis.call("ZSCORE", KEYS[11], jobId) then
      state = "failed"
      reason = redis.call("HGET", jobKey, "failedReason") or "the job failed"
    elseif redis.call("ZSCORE", KEYS[10], jobId) then
      redis.call("ZREM", KEYS[10], jobId)
      redis.call("DEL", jobKey, jobKey .. ":logs")
      enqueueNode(run, q, i, it, 0)
      state = "requeued"
    elseif redis.call("EXISTS", jobKey) == 0 then
      enqueueNode(run, q, i, it, 0)
      state = "requeued"
    end
    out[#out + 1] = { i, rec.id, it, jobId, state, reason }
  end
end
writeJobCounter(q)
return { 1, out }
