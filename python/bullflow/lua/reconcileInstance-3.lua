--[[
  The reconciler's decision for one durable instance from the active index. Nothing is run in
  place: when the instance needs an activation and nobody provides one (no lease, the job of its
  latest sequence is gone, the caller checked), the job sequence advances and the caller enqueues
  job <id>-r<seq>. The check is a compare-and-set on the sequence the caller read.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] instance log stream (P:wf:{id}:log)
    ARGV[1] the job sequence the caller saw
  Output:
    {1 (STORED), job sequence}; {0 (ALREADY_PRESENT)} the sequence moved on; {-5 (UNKNOWN_RUN)};
    {-2 (NOT_RUNNING), status} finished or paused (drop it from the index); {-8 (LEASE_HELD),
    lease ms left}; {-9 (NOTHING_DUE), next wake-up or 0} waiting for a later deadline or an
    event.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "isTerminal"

local f = redis.call("HMGET", KEYS[1], "status", "seq", "pending", "next_wake")
local status = f[1]
if not status then
  return { -5 }
end
if isTerminal(status) or status == "paused" then
  return { -2, status }
end
local left = redis.call("PTTL", KEYS[2])
if left ~= -2 then
  return { -8, left }
end
local now = durableNow()
if status == "waitingForPause" then
  redis.call("HSET", KEYS[1], "status", "paused", "paused_at", now, "updated_at", now)
  durableLog(KEYS[3], now, "WORKFLOW_PAUSED", "", "")
  return { -2, "paused" }
end
if f[2] ~= ARGV[1] then
  return { 0 }
end
if status == "waiting" and f[3] ~= "1" and (not f[4] or tonumber(f[4]) > now) then
  return { -9, tonumber(f[4] or "0") }
end
if status == "running" then
  redis.call("HSET", KEYS[1], "status", "queued", "updated_at", now)
end
local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
durableLog(KEYS[3], now, "WORKFLOW_REQUEUED", "", "")
return { 1, seq }
