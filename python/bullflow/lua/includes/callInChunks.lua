--[[
  Runs a variadic command (HSET, HDEL, ...) on key with the items of list from index first on,
  a few thousand arguments per call: unpack() of a longer list overflows Lua's C stack ("too
  many results to unpack"). step keeps field/value pairs together.
]]
local function callInChunks(command, key, list, first, step)
  local chunk = 4000 - (4000 % step)
  for i = first, #list, chunk do
    redis.call(command, key, unpack(list, i, math.min(i + chunk - 1, #list)))
  end
end
