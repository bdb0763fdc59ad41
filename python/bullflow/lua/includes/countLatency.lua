--[[
  Adds one observation of ms milliseconds to a latency histogram of the metrics hash
  (bullflow:metrics): the count of its bucket "<name>:<upper bound ms>" (or "<name>:inf") and
  the sum "<name>s" (buckets of latencyBucket).
]]
local function countLatency(name, ms)
  redis.call("HINCRBY", "bullflow:metrics", name .. ":" .. latencyBucket(ms), 1)
  redis.call("HINCRBY", "bullflow:metrics", name .. "s", ms)
end
