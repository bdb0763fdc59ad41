--[[
  Adds one observation of ms milliseconds to a latency histogram of the metrics hash
  (bullflow:metrics): the count of its bucket "<name>:<upper bound ms>" (or "<name>:inf") and
  the sum "<name>s". The bounds are bullflow.tracking.LATENCY_BUCKETS_MS.
]]
local function countLatency(name, ms)
  local le = "inf"
  for _, bound in ipairs({ 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000 }) do
    if ms <= bound then
      le = bound
      break
    end
  end
  redis.call("HINCRBY", "bullflow:metrics", name .. ":" .. le, 1)
  redis.call("HINCRBY", "bullflow:metrics", name .. "s", ms)
end
