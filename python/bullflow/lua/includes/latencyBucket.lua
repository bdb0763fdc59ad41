--[[
  The histogram bucket of a latency of ms milliseconds: the smallest upper bound (ms) it does
  not exceed, or "inf". The bounds are bullflow.tracking.LATENCY_BUCKETS_MS.
]]
local latencyBounds = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000 }
local function latencyBucket(ms)
  for k = 1, #latencyBounds do
    local bound = latencyBounds[k]
    if ms <= bound then
      return bound
    end
  end
  return "inf"
end
