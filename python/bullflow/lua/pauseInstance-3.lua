--[[
  Pauses a durable instance. A running instance whose runner holds the lease goes to
  "waitingForPause" (the runner stops at its next step boundary and sets "paused"); a queued or
  waiting instance, or a running one whose runner is gone, is "paused" at once. Pausing a paused
  or waitingForPause instance changes nothing.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] instance log stream (P:wf:{id}:log)
  Output:
    {1 (STORED), new status}; {0 (ALREADY_PRESENT), status}; {-5 (UNKNOWN_RUN)};
    {-11 (WRONG_STATUS), status} the instance is finished.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "isTerminal"

local status = redis.call("HGET", KEYS[1], "status")
if not status then
  return { -5 }
end
if status == "paused" or status == "waitingForPause" then
  return { 0, status }
end
if isTerminal(status) then
  return { -11, status }
end
local now = durableNow()
if status == "running" and redis.call("EXISTS", KEYS[2]) == 1 then
  redis.call("HSET", KEYS[1], "status", "waitingForPause", "pause_requested_at", now, "updated_at", now)
  durableLog(KEYS[3], now, "WORKFLOW_PAUSE_REQUESTED", "", "")
  return { 1, "waitingForPause" }
end
redis.call("HSET", KEYS[1], "status", "paused", "paused_at", now, "updated_at", now)
durableLog(KEYS[3], now, "WORKFLOW_PAUSED", "", "")
return { 1, "paused" }
