--[[
  The status of node i (0 pending, 1 ready, 2 running, 3 completed, 4 skipped, 5 failed,
  6 awaiting; the values of bullflow._pure.graph), cached for the call.
]]
-- @include "numText"
local function nodeStatus(run, i)
  local s = run.statuses[i]
  if s == nil then
    s = tonumber(redis.call("HGET", run.runKey, "s:" .. numText(i)) or "0")
    run.statuses[i] = s
  end
  return s
end
