--[[
  True while some predecessor of node t (its static predecessors plus any added while the run
  runs) has not resolved (arrived or skipped).
]]
local function isWaitingOn(run, t)
  local rec = nodeRecord(run, t)
  return setSize(run, "r:" .. t) < rec.npreds + setSize(run, "x:" .. t)
end
