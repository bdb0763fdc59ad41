--[[
  Terminates a durable instance that is not finished: the epoch advances (any runner still
  working is fenced off: its commits are refused), the lease and waiters are dropped, the status
  becomes "terminated", the keys get their retention TTL, the final status is published on the
  done channel and the instance id on the cancel channel (workers cancel its running step).

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] buffered events (P:wf:{id}:events)
    KEYS[5] event waiters (P:wf:{id}:waiters)
    KEYS[6] instance log stream (P:wf:{id}:log)
    ARGV[1] done channel (P:wf:done:{id})
    ARGV[2] cancel channel (P:wf:cancel)
    ARGV[3] instance id
  Output:
    {1 (STORED), the sequence of the instance's last wake-up job or false (the caller removes
    it)}; {-5 (UNKNOWN_RUN)}; {-11 (WRONG_STATUS)} the instance is finished already.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "durableExpire"
-- @include "isTerminal"

local status = redis.call("HGET", KEYS[1], "status")
if not status then
  return { -5 }
end
if isTerminal(status) then
  return { -11 }
end
local now = durableNow()
redis.call("HINCRBY", KEYS[1], "epoch", 1)
redis.call("HSET", KEYS[1], "status", "terminated", "finished_at", now, "updated_at", now)
local wakeSeq = redis.call("HGET", KEYS[1], "wake_seq")
redis.call("HDEL", KEYS[1], "next_wake", "scheduled_wake", "pending", "paused_at", "pause_requested_at", "wake_seq")
redis.call("DEL", KEYS[2], KEYS[5])
durableLog(KEYS[6], now, "WORKFLOW_TERMINATED", "", "")
durableExpire(KEYS[1], { KEYS[1], KEYS[3], KEYS[4], KEYS[6] })
redis.call("PUBLISH", ARGV[1], '{"status":"terminated"}')
redis.call("PUBLISH", ARGV[2], ARGV[3])
return { 1, wakeSeq }
