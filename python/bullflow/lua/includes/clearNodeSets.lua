--[[
  Forgets the arrivals and resolutions recorded for node i; with extra, also the predecessors
  added to it by an earlier iteration (batch workers).
]]
local function clearNodeSets(run, i, extra)
  redis.call("HDEL", run.runKey, "a:" .. i, "a:" .. i .. "#", "r:" .. i, "r:" .. i .. "#")
  if extra then
    redis.call("HDEL", run.runKey, "x:" .. i, "x:" .. i .. "#")
  end
end
