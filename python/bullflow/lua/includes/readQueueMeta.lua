--[[
  Reads the queue's meta hash fields the scripts need, once per script, into q: q.maxEvents
  (the events stream length limit: bullmq's default 10000, written when missing, as bullmq's
  scripts do), q.paused, q.concurrency (the global concurrency limit, or nil) and q.rateLimited
  (a "max" is set).
]]
local function readQueueMeta(q)
  if q.maxEvents then
    return
  end
  local meta = redis.call("HMGET", q.meta, "opts.maxLenEvents", "paused", "concurrency", "max")
  local maxEvents = meta[1]
  if not maxEvents then
    maxEvents = "10000"
    redis.call("HSET", q.meta, "opts.maxLenEvents", maxEvents)
  end
  q.maxEvents = maxEvents
  q.paused = meta[2] ~= false
  q.concurrency = tonumber(meta[3])
  q.rateLimited = meta[4] ~= false
end
