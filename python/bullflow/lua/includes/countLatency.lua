--[[
  Adds one observation of ms milliseconds to a latency histogram of the metrics hash
  (bullflow:metrics), in an accumulator of newNodeCounts (writeNodeCounts writes it): the count
  of its bucket "<name>:<upper bound ms>" (or "<name>:inf") and the sum "<name>s" (buckets of
  latencyBucket).
]]
-- @include "latencyBucket"
local function countLatency(counts, name, ms)
  local other = counts.other
  local bucket = name .. ":" .. latencyBucket(ms)
  other[bucket] = (other[bucket] or 0) + 1
  other[name .. "s"] = (other[name .. "s"] or 0) + ms
end
