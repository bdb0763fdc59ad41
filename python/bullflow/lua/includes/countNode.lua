--[[
  Adds one finished execution to an accumulator of newNodeCounts: counted is "ok" (nc) or
  "failed" (nf), latency its milliseconds from start to end (nil: unknown, not in the
  histogram), now the time it ended (ms; its minute is counted). The histogram's bounds are
  bullflow.tracking.LATENCY_BUCKETS_MS.
]]
local function countNode(counts, counted, latency, now)
  if counted == "ok" then
    counts.nc = counts.nc + 1
  else
    counts.nf = counts.nf + 1
  end
  if latency then
    local le = latencyBucket(latency)
    counts.buckets[le] = (counts.buckets[le] or 0) + 1
    counts.sum = counts.sum + latency
  end
  local minute = now - now % 60000
  counts.minutes[minute] = (counts.minutes[minute] or 0) + 1
end
