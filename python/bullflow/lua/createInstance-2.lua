--[[
  Creates a durable workflow instance, atomically: fails when the id exists (whatever its
  status), otherwise writes the instance hash with status "queued", epoch 1 and job sequence 1
  (the caller enqueues its first activation job, <id>-r1) and logs WORKFLOW_QUEUED.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] instance log stream (P:wf:{id}:log)
    ARGV[1] workflow name
    ARGV[2] workflow version
    ARGV[3] params, JSON text
    ARGV[4] retention of the finished instance, seconds (0 = keep)
  Output:
    {code, job sequence, server time ms}: 1 (STORED) created, 0 (ALREADY_PRESENT) the id exists.
]]
-- @include "durableNow"
-- @include "durableLog"

if redis.call("EXISTS", KEYS[1]) == 1 then
  return { 0, 0, 0 }
end
local now = durableNow()
redis.call("HSET", KEYS[1], "status", "queued", "workflow", ARGV[1], "version", ARGV[2], "params", ARGV[3],
  "epoch", 1, "created_at", now, "updated_at", now, "step_count", 0, "seq", 1, "pending", 0, "ttl", ARGV[4])
durableLog(KEYS[2], now, "WORKFLOW_QUEUED", "", "")
return { 1, 1, now }
