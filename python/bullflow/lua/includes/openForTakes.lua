--[[
  Whether jobs may be taken now, as bullmq's moveToActive decides it, checked once per script
  (q.open caches it): not when the queue is paused, rate limited ("max") or has a global
  concurrency limit (q.limit then holds it, for the caller to check against the active list),
  nor when a due delayed job is a prioritized one (bullmq's moveToActive promotes those). Due
  delayed jobs go to the wait list first, as moveToActive's promoteDelayedJobs does, and the
  marker wakes blocked workers for them. q: the script's queue keys (meta, delayed, wait,
  events, marker) and q.prefix the queue key prefix; now the script's clock (ms).
]]
-- @include "readQueueMeta"
local function openForTakes(q, now)
  if q.open ~= nil then
    return q.open
  end
  local rcall = redis.call
  readQueueMeta(q)
  local open = not q.paused and not q.rateLimited
  if open then
    local due = rcall("ZRANGEBYSCORE", q.delayed, 0, (now + 1) * 0x1000 - 1, "LIMIT", 0, 1000)
    for _, id in ipairs(due) do
      if (tonumber(rcall("HGET", q.prefix .. id, "priority")) or 0) ~= 0 then
        open = false
        break
      end
    end
    if open then
      for _, id in ipairs(due) do
        rcall("ZREM", q.delayed, id)
        rcall("LPUSH", q.wait, id)
        rcall("XADD", q.events, "*", "event", "waiting", "jobId", id, "prev", "delayed")
        rcall("HSET", q.prefix .. id, "delay", "0")
      end
      if #due > 0 and not q.marked then
        rcall("ZADD", q.marker, "0", "0")
        q.marked = true
      end
    end
  end
  q.open = open
  q.limit = open and q.concurrency or nil
  return open
end
