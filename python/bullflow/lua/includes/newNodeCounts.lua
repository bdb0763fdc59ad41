--[[
  An empty accumulator of node executions for the metrics (countNode adds to it,
  writeNodeCounts writes it): counts by outcome, the latency histogram and counts by minute;
  other holds further counters of the metrics hash (field -> increment: finished runs by
  status and their latency histogram, publishStatus).
]]
local function newNodeCounts()
  return { nc = 0, nf = 0, buckets = {}, sum = 0, minutes = {}, other = {} }
end
