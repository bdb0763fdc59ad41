--[[
  Forgets the arrivals and resolutions recorded for node i; with extra, also the predecessors
  added to it by an earlier iteration (batch workers).
]]
-- @include "numText"
local function clearNodeSets(run, i, extra)
  local n = numText(i)
  redis.call("HDEL", run.runKey, "a:" .. n, "a:" .. n .. "#", "r:" .. n, "r:" .. n .. "#")
  if extra then
    redis.call("HDEL", run.runKey, "x:" .. n, "x:" .. n .. "#")
  end
end
