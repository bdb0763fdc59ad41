--[[
  The commit rule of durable instances: the caller's lease token is the one stored, the token's
  epoch (the text before ":") is the instance's, and the instance is not finished or paused.
  Returns the instance status, or nil when the caller is fenced off.
]]
local function durableFence(instanceKey, leaseKey, token)
  if redis.call("GET", leaseKey) ~= token then
    return nil
  end
  local f = redis.call("HMGET", instanceKey, "status", "epoch")
  if f[2] == false or f[2] ~= string.match(token, "^(%d+):") then
    return nil
  end
  local st = f[1]
  if st == "complete" or st == "errored" or st == "terminated" or st == "paused" then
    return nil
  end
  return st
end
