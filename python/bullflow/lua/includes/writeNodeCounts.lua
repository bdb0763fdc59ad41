--[[
  Writes an accumulator of newNodeCounts to the metrics: HINCRBYs of bullflow:metrics (nc, nf,
  "nl:<le>" per histogram bucket, "nls" the latency sum) and INCRBY of each minute's count
  bullflow:metrics:m:<minute start ms> (kept for an hour); counters with nothing to add are
  left alone.
]]
local function writeNodeCounts(counts)
  if counts.nc > 0 then
    redis.call("HINCRBY", "bullflow:metrics", "nc", counts.nc)
  end
  if counts.nf > 0 then
    redis.call("HINCRBY", "bullflow:metrics", "nf", counts.nf)
  end
  local observed = false
  for le, n in pairs(counts.buckets) do
    redis.call("HINCRBY", "bullflow:metrics", "nl:" .. le, n)
    observed = true
  end
  if observed then
    redis.call("HINCRBY", "bullflow:metrics", "nls", counts.sum)
  end
  for minute, n in pairs(counts.minutes) do
    local key = "bullflow:metrics:m:" .. minute
    redis.call("INCRBY", key, n)
    redis.call("EXPIRE", key, 3900)
  end
end
