--[[
  The size of a node-index set written by addToSet.
]]
local function setSize(run, name)
  return tonumber(redis.call("HGET", run.runKey, name .. "#") or "0")
end
