--[[
  Delivers an event to a durable instance: it joins the instance's buffer for its type (FIFO);
  when a step waits on that type, the oldest waiter still pending takes the oldest buffered
  event (one event resolves exactly one waiter) and the instance is woken: marked pending when a
  runner holds the lease (it replays before letting go), otherwise queued with a new job
  sequence for the caller to enqueue. A paused instance keeps the delivery for its resume.

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    KEYS[3] step records (P:wf:{id}:steps)
    KEYS[4] buffered events (P:wf:{id}:events)
    KEYS[5] event waiters (P:wf:{id}:waiters)
    KEYS[6] instance log stream (P:wf:{id}:log)
    ARGV[1] event type
    ARGV[2] the event {type, payload, timestamp}, JSON text
  Output:
    {1 (STORED), the step key it was delivered to or false, job sequence or false};
    {-5 (UNKNOWN_RUN)}; {-11 (WRONG_STATUS), status} the instance is finished.
]]
-- @include "durableNow"
-- @include "durableLog"
-- @include "isTerminal"

local status = redis.call("HGET", KEYS[1], "status")
if not status then
  return { -5 }
end
if isTerminal(status) then
  return { -11, status }
end
local now = durableNow()
local eventType = ARGV[1]
local buffered = cjson.decode(redis.call("HGET", KEYS[4], eventType) or "[]")
buffered[#buffered + 1] = ARGV[2]
durableLog(KEYS[6], now, "EVENT_RECEIVED", "", eventType)
local delivered = false
local waitersText = redis.call("HGET", KEYS[5], eventType)
if waitersText then
  local waiting = cjson.decode(waitersText)
  while #waiting > 0 and not delivered do
    local key = table.remove(waiting, 1)
    local record = redis.call("HGET", KEYS[3], key)
    if record and string.sub(record, 1, 15) == '{"s":"pending",' then
      local event = table.remove(buffered, 1)
      redis.call("HSET", KEYS[3], key, '{"s":"ok",' .. string.sub(record, 16, -2) .. ',"v":' .. event ..
        ',"t1":' .. now .. "}")
      delivered = key
      durableLog(KEYS[6], now, "WAIT_COMPLETE", key, eventType)
    end
  end
  if #waiting == 0 then
    redis.call("HDEL", KEYS[5], eventType)
  else
    redis.call("HSET", KEYS[5], eventType, cjson.encode(waiting))
  end
end
if #buffered == 0 then
  redis.call("HDEL", KEYS[4], eventType)
else
  redis.call("HSET", KEYS[4], eventType, cjson.encode(buffered))
end
redis.call("HSET", KEYS[1], "updated_at", now)
local seq = false
if delivered then
  if redis.call("EXISTS", KEYS[2]) == 1 then
    redis.call("HSET", KEYS[1], "pending", 1)
  elseif status ~= "paused" and status ~= "waitingForPause" then
    redis.call("HSET", KEYS[1], "status", "queued", "pending", 1)
    seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
  end
end
return { 1, delivered, seq }
