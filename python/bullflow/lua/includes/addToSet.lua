--[[
  Adds p to the node-index set stored in the run hash as field <name> (",a,b,") with its size in
  <name>#. Returns true when p was not in the set.
]]
local function addToSet(run, name, p)
  local text = redis.call("HGET", run.runKey, name) or ","
  local item = "," .. p .. ","
  if string.find(text, item, 1, true) then
    return false
  end
  redis.call("HSET", run.runKey, name, text .. p .. ",")
  redis.call("HINCRBY", run.runKey, name .. "#", 1)
  return true
end
