--[[
  Gives a finished instance's keys its retention TTL (the instance field "ttl", seconds; 0 keeps
  them): the instance hash, its steps, buffered events, waiters and log.
]]
local function durableExpire(instanceKey, keys)
  local ttl = tonumber(redis.call("HGET", instanceKey, "ttl") or "0") or 0
  if ttl > 0 then
    for _, key in ipairs(keys) do
      redis.call("EXPIRE", key, ttl)
    end
  end
end
