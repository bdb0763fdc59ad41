--[[
  The server clock in milliseconds: durable instances take every timestamp from Redis, never from
  a worker's clock.
]]
local function durableNow()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
