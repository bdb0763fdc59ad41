--[[
  Sets the status of node i (see nodeStatus).
]]
local function setNodeStatus(run, i, s)
  run.statuses[i] = s
  if s == 0 then
    redis.call("HDEL", run.runKey, "s:" .. i)
  else
    redis.call("HSET", run.runKey, "s:" .. i, s)
  end
end
