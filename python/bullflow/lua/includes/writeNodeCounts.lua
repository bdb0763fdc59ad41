--[[
  Writes an accumulator of newNodeCounts to the metrics: HINCRBYs of bullflow:metrics (nc, nf,
  "nl:<le>" per histogram bucket, "nls" the latency sum, and the other counters) and INCRBY of
  each minute's count bullflow:metrics:m:<minute start ms> (kept for an hour); counters with
  nothing to add are left alone.
]]
-- @include "numText"
local function writeNodeCounts(counts)
  if counts.nc > 0 then
    redis.call("HINCRBY", "bullflow:metrics", "nc", numText(counts.nc))
  end
  if counts.nf > 0 then
    redis.call("HINCRBY", "bullflow:metrics", "nf", numText(counts.nf))
  end
  local observed = false
  for le, n in pairs(counts.buckets) do
    redis.call("HINCRBY", "bullflow:metrics", "nl:" .. le, numText(n))
    observed = true
  end
  if observed then
    redis.call("HINCRBY", "bullflow:metrics", "nls", numText(counts.sum))
  end
  for field, n in pairs(counts.other) do
    redis.call("HINCRBY", "bullflow:metrics", field, numText(n))
  end
  for minute, n in pairs(counts.minutes) do
    local key = "bullflow:metrics:m:" .. minute
    if redis.call("INCRBY", key, numText(n)) == n then
      redis.call("EXPIRE", key, "3900") -- a new minute key: kept 65 minutes from its first count
    end
  end
end
