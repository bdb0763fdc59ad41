--[[
  True while some predecessor of node t (its static predecessors plus any added while the run
  runs) has not resolved (arrived or skipped).
]]
local function isWaitingOn(run, t)
  local rec = nodeRecord(run, t)
  local f = redis.call("HMGET", run.runKey, "r:" .. t .. "#", "x:" .. t .. "#")
  return (tonumber(f[1]) or 0) < rec.npreds + (tonumber(f[2]) or 0)
end
