--[[
  Ends an activation that cannot go on (every open step waits on a timer, an event or a pause),
  fenced. When something arrived meanwhile (an event delivered or a resume while the lease was
  held) or the earliest deadline is already due, the runner keeps its lease and replays again
  (CONTINUE). A requested pause takes effect here: status "paused". Otherwise the status becomes
  "waiting" with the earliest deadline as next wake-up; when that deadline has no wake-up job yet
  the job sequence advances and the caller enqueues job <id>-r<seq>, delayed until the deadline,
  and removes the wake-up job it replaces (the instance field wake_seq keeps the sequence of the
  latest one, for the caller that finishes the instance to remove).
  The lease is released.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] instance log stream (P:wf:{id}:log)
    ARGV[1] lease token
    ARGV[2] earliest deadline (ms since the epoch), or "" when only events are awaited
  Output:
    {2 (CONTINUE)}; {1 (STORED), status, job sequence or false, delay ms, sequence of the
    wake-up job replaced or false}; {-10 (FENCED)}.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "durableFence"

local status = durableFence(KEYS[1], KEYS[2], ARGV[1])
if not status then
  return { -10 }
end
local now = durableNow()
if status == "waitingForPause" then
  redis.call("HSET", KEYS[1], "status", "paused", "paused_at", now, "updated_at", now, "pending", 0)
  redis.call("DEL", KEYS[2])
  durableLog(KEYS[3], now, "WORKFLOW_PAUSED", "", "")
  return { 1, "paused", false, 0 }
end
local f = redis.call("HMGET", KEYS[1], "pending", "scheduled_wake", "wake_seq")
local deadline = tonumber(ARGV[2])
if f[1] == "1" or (deadline and deadline <= now) then
  redis.call("HSET", KEYS[1], "pending", 0)
  return { 2 }
end
redis.call("HSET", KEYS[1], "status", "waiting", "updated_at", now)
redis.call("DEL", KEYS[2])
durableLog(KEYS[3], now, "WORKFLOW_WAITING", "", ARGV[2])
if not deadline then
  redis.call("HDEL", KEYS[1], "next_wake")
  return { 1, "waiting", false, 0 }
end
redis.call("HSET", KEYS[1], "next_wake", deadline)
if f[2] and tonumber(f[2]) == deadline then
  return { 1, "waiting", false, 0 }
end
local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
redis.call("HSET", KEYS[1], "scheduled_wake", deadline, "wake_seq", seq)
return { 1, "waiting", seq, deadline - now, f[3] or false }
