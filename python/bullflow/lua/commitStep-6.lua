--[[
  Writes one step record of a durable instance, fenced: only the lease holder of the current
  epoch writes, and never into a finished or paused instance. Records are JSON objects that open
  with '{"s":"<state>",' (pending, ok or err); a final record (ok, err) is written once, first
  writer wins. Operations:
    "put"     a pending record (an attempt starts, a retry is scheduled, a sleep starts); with
              ARGV[7] = "start" nothing starts while a pause is requested (PAUSING); ARGV[8] = "1"
              counts a new step against the instance's step count
    "final"   the ok or err record
    "wait"    a wait for an event of type ARGV[7]: the oldest buffered event of that type, if any,
              completes it at once (the record is ARGV[8] .. event .. "}"); otherwise the pending
              record is written and the step joins the type's waiters (oldest first)
    "timeout" the wait's deadline passed: the err record is written only if the step is still
              pending (a delivery that came first wins), and the step leaves the waiters
  Each write appends ARGV[5] (event name, "" for none) with detail ARGV[6] to the instance log.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] buffered events (P:wf:{id}:events)
    KEYS[5] event waiters (P:wf:{id}:waiters)
    KEYS[6] instance log stream (P:wf:{id}:log)
    ARGV[1] lease token
    ARGV[2] operation: put | final | wait | timeout
    ARGV[3] step key (<kind>:<name>#<n>)
    ARGV[4] record JSON
    ARGV[5] log event
    ARGV[6] log detail
    ARGV[7] "start" (put), or the event type (wait, timeout)
    ARGV[8] "1" to count a new step (put), or the record prefix of a delivered event (wait)
  Output:
    {code, record written or found, instance status}: 1 (STORED) written; 0 (ALREADY_PRESENT) a
    final record was there already (returned); -10 (FENCED); -12 (PAUSING) a pause is requested.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "durableFence"

local status = durableFence(KEYS[1], KEYS[2], ARGV[1])
if not status then
  return { -10, false, false }
end
local op, key, record = ARGV[2], ARGV[3], ARGV[4]
local current = redis.call("HGET", KEYS[3], key)
local final = current and string.sub(current, 1, 15) ~= '{"s":"pending",'
if op == "put" and ARGV[7] == "start" and status == "waitingForPause" then
  return { -12, false, status }
end
if final then
  return { 0, current, status }
end
local now = durableNow()

local function removeWaiter(eventType)
  local text = redis.call("HGET", KEYS[5], eventType)
  if not text then
    return
  end
  local list = cjson.decode(text)
  local kept = {}
  for _, k in ipairs(list) do
    if k ~= key then
      kept[#kept + 1] = k
    end
  end
  if #kept == 0 then
    redis.call("HDEL", KEYS[5], eventType)
  else
    redis.call("HSET", KEYS[5], eventType, cjson.encode(kept))
  end
end

if op == "wait" then
  local eventType = ARGV[7]
  local text = redis.call("HGET", KEYS[4], eventType)
  if text then
    local buffered = cjson.decode(text)
    local event = table.remove(buffered, 1)
    if #buffered == 0 then
      redis.call("HDEL", KEYS[4], eventType)
    else
      redis.call("HSET", KEYS[4], eventType, cjson.encode(buffered))
    end
    record = ARGV[8] .. event .. ',"t1":' .. now .. "}"
    redis.call("HSET", KEYS[3], key, record)
    durableLog(KEYS[6], now, "WAIT_COMPLETE", key, eventType)
    redis.call("HSET", KEYS[1], "updated_at", now)
    return { 1, record, status }
  end
  redis.call("HSET", KEYS[3], key, record)
  local waiting = cjson.decode(redis.call("HGET", KEYS[5], eventType) or "[]")
  local present = false
  for _, k in ipairs(waiting) do
    present = present or k == key
  end
  if not present then
    waiting[#waiting + 1] = key
    redis.call("HSET", KEYS[5], eventType, cjson.encode(waiting))
  end
elseif op == "timeout" then
  redis.call("HSET", KEYS[3], key, record)
  removeWaiter(ARGV[7])
else
  redis.call("HSET", KEYS[3], key, record)
  if op == "put" and ARGV[8] == "1" then
    redis.call("HINCRBY", KEYS[1], "step_count", 1)
  end
end
redis.call("HSET", KEYS[1], "updated_at", now)
if ARGV[5] ~= "" then
  durableLog(KEYS[6], now, ARGV[5], key, ARGV[6])
end
return { 1, record, status }
