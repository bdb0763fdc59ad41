--[[
  Finishes a durable instance, fenced: status "complete" with its output or "errored" with its
  error, the lease released, waiters dropped, every key of the instance given its retention TTL,
  WORKFLOW_SUCCESS / WORKFLOW_FAILURE logged, and the final status published on the instance's
  done channel (RunHandle-style push for result()).

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] buffered events (P:wf:{id}:events)
    KEYS[5] event waiters (P:wf:{id}:waiters)
    KEYS[6] instance log stream (P:wf:{id}:log)
    ARGV[1] lease token
    ARGV[2] "complete" or "errored"
    ARGV[3] the output (complete) or the error {type, name, message} (errored), JSON text
    ARGV[4] done channel (P:wf:done:{id})
  Output:
    {1 (STORED), the sequence of the instance's last wake-up job or false (the caller removes
    it if it still waits)}; {-10 (FENCED)} the caller lost the instance (nothing written).
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "durableFence"
-- @include "durableExpire"

if not durableFence(KEYS[1], KEYS[2], ARGV[1]) then
  return { -10 }
end
local now = durableNow()
local field = ARGV[2] == "complete" and "output" or "error"
redis.call("HSET", KEYS[1], "status", ARGV[2], field, ARGV[3], "finished_at", now, "updated_at", now)
local wakeSeq = redis.call("HGET", KEYS[1], "wake_seq")
redis.call("HDEL", KEYS[1], "next_wake", "scheduled_wake", "pending", "wake_seq")
redis.call("DEL", KEYS[2], KEYS[5])
durableLog(KEYS[6], now, ARGV[2] == "complete" and "WORKFLOW_SUCCESS" or "WORKFLOW_FAILURE", "", ARGV[3])
durableExpire(KEYS[1], { KEYS[1], KEYS[3], KEYS[4], KEYS[6] })
redis.call("PUBLISH", ARGV[4], '{"status":"' .. ARGV[2] .. '","' .. field .. '":' .. ARGV[3] .. "}")
return { 1, wakeSeq }
