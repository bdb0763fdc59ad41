--[[
  Resumes a durable instance. From "waitingForPause" the pending pause is cancelled: back to
  "running" while the runner holds the lease (marked pending, so a runner already stopping
  replays instead), otherwise handled as from "paused". From "paused" every pending timer
  (sleep wake-ups, retry times, wait timeouts: the "w" of pending step records) moves later by
  the time spent paused, the status becomes "queued" and the job sequence advances: the caller
  enqueues job <id>-r<seq> (a new job id, never an old one).

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] instance log stream (P:wf:{id}:log)
  Output:
    {1 (STORED), new status, job sequence or false}; {-5 (UNKNOWN_RUN)}; {-11 (WRONG_STATUS),
    status} the instance is neither paused nor waiting for a pause.
]]
-- @include "durableNow"
-- @include "durableLog"

local f = redis.call("HMGET", KEYS[1], "status", "paused_at")
local status = f[1]
if not status then
  return { -5 }
end
local now = durableNow()
if status == "waitingForPause" and redis.call("EXISTS", KEYS[2]) == 1 then
  redis.call("HSET", KEYS[1], "status", "running", "updated_at", now, "pending", 1)
  redis.call("HDEL", KEYS[1], "pause_requested_at")
  durableLog(KEYS[4], now, "WORKFLOW_RESUMED", "", "")
  return { 1, "running", false }
end
if status ~= "paused" and status ~= "waitingForPause" then
  return { -11, status }
end
local shift = 0
if status == "paused" and f[2] then
  shift = math.max(0, now - tonumber(f[2]))
end
if shift > 0 then
  local flat = redis.call("HGETALL", KEYS[3])
  for k = 1, #flat, 2 do
    local record = flat[k + 1]
    if string.sub(record, 1, 15) == '{"s":"pending",' and string.find(record, '"w":', 1, true) then
      local moved = string.gsub(record, '"w":(%d+)', function(w)
        return '"w":' .. (tonumber(w) + shift)
      end, 1)
      redis.call("HSET", KEYS[3], flat[k], moved)
    end
  end
end
redis.call("HSET", KEYS[1], "status", "queued", "updated_at", now, "pending", 1)
redis.call("HDEL", KEYS[1], "paused_at", "pause_requested_at", "next_wake", "scheduled_wake")
local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
durableLog(KEYS[4], now, "WORKFLOW_RESUMED", "", tostring(shift))
return { 1, "queued", seq }
