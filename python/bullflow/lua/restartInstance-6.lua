--[[
  Restarts a durable instance from the top, whatever its status: the epoch advances (a running
  runner is fenced off), step records, buffered events, waiters and the lease are deleted, the
  outcome and timers are cleared, retention TTLs are removed, the status becomes "queued" and
  the job sequence advances: the caller enqueues job <id>-r<seq>. The params are kept.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] buffered events (P:wf:{id}:events)
    KEYS[5] event waiters (P:wf:{id}:waiters)
    KEYS[6] instance log stream (P:wf:{id}:log)
    ARGV[1] cancel channel (P:wf:cancel)
    ARGV[2] instance id
  Output:
    {1 (STORED), job sequence}; {-5 (UNKNOWN_RUN)}.
]]
-- @include "durableNow"
-- @include "durableLog"

if redis.call("EXISTS", KEYS[1]) == 0 then
  return { -5 }
end
local now = durableNow()
redis.call("HINCRBY", KEYS[1], "epoch", 1)
redis.call("DEL", KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call("HDEL", KEYS[1], "output", "error", "finished_at", "paused_at", "pause_requested_at", "next_wake",
  "scheduled_wake")
redis.call("HSET", KEYS[1], "status", "queued", "step_count", 0, "pending", 0, "updated_at", now)
redis.call("PERSIST", KEYS[1])
redis.call("PERSIST", KEYS[6])
local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
durableLog(KEYS[6], now, "WORKFLOW_RESTARTED", "", "")
redis.call("PUBLISH", ARGV[1], ARGV[2])
return { 1, seq }
