--[[
  Sets the status of node i (see nodeStatus).
]]
-- @include "numText"
local function setNodeStatus(run, i, s)
  run.statuses[i] = s
  if s == 0 then
    redis.call("HDEL", run.runKey, "s:" .. numText(i))
  else
    redis.call("HSET", run.runKey, "s:" .. numText(i), numText(s))
  end
end
