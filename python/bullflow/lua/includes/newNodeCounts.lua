--[[
  An empty accumulator of node executions for the metrics (countNode adds to it,
  writeNodeCounts writes it): counts by outcome, the latency histogram and counts by minute.
]]
local function newNodeCounts()
  return { nc = 0, nf = 0, buckets = {}, sum = 0, minutes = {} }
end
