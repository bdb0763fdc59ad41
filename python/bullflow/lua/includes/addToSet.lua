--[[
  Adds p to the node-index set stored in the run hash as field <name> (",a,b,") with its size in
  <name>#. Returns true when p was not in the set.
]]
local function addToSet(run, name, p)
  local f = redis.call("HMGET", run.runKey, name, name .. "#")
  local text = f[1] or ","
  if string.find(text, "," .. p .. ",", 1, true) then
    return false
  end
  redis.call("HSET", run.runKey, name, text .. p .. ",", name .. "#", (tonumber(f[2]) or 0) + 1)
  return true
end
