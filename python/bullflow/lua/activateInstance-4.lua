--[[
  Starts an activation of a durable instance: takes the instance's lease (token
  "<epoch>:<uuid>", PX ARGV[2]) and returns what a replay needs in one reply, the instance's
  fields and every step record. A second runner never gets in: while the lease is held the
  script marks the instance "pending" (the holder replays again before it lets go) and returns
  LEASE_HELD. A finished or paused instance is not run; a waitingForPause instance whose runner is
  gone becomes paused; a waiting instance with nothing due (no delivery, next wake-up in the
  future) is left alone.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] instance log stream (P:wf:{id}:log)
    ARGV[1] a unique runner id (uuid)
    ARGV[2] lease duration, ms
  Output:
    {1 (STORED), token, server time ms, workflow, params JSON, created_at, step_count, version,
    steps as a flat field/value list}; {-5 (UNKNOWN_RUN)} no such instance; {-2 (NOT_RUNNING),
    status} finished or paused; {-8 (LEASE_HELD), lease ms left}; {-9 (NOTHING_DUE), next wake-up}.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "isTerminal"

local f = redis.call("HMGET", KEYS[1], "status", "epoch", "pending", "next_wake", "workflow", "params",
  "created_at", "step_count", "version")
local status = f[1]
if not status then
  return { -5 }
end
if isTerminal(status) or status == "paused" then
  return { -2, status }
end
local now = durableNow()
local left = redis.call("PTTL", KEYS[2])
if left ~= -2 then
  redis.call("HSET", KEYS[1], "pending", 1)
  return { -8, left }
end
if status == "waitingForPause" then
  redis.call("HSET", KEYS[1], "status", "paused", "paused_at", now, "updated_at", now)
  durableLog(KEYS[4], now, "WORKFLOW_PAUSED", "", "")
  return { -2, "paused" }
end
if status == "waiting" and f[3] ~= "1" and (not f[4] or tonumber(f[4]) > now) then
  return { -9, tonumber(f[4] or "0") }
end
local token = f[2] .. ":" .. ARGV[1]
redis.call("SET", KEYS[2], token, "PX", ARGV[2])
redis.call("HSET", KEYS[1], "status", "running", "pending", 0, "updated_at", now)
redis.call("HINCRBY", KEYS[1], "activations", 1)
durableLog(KEYS[4], now, "WORKFLOW_RUNNING", "", "")
return { 1, token, now, f[5], f[6], f[7], f[8], f[9] or "", redis.call("HGETALL", KEYS[3]) }
