--[[
  Stores a compiled blueprint graph (the HSET arguments of CompiledGraph.lua_encoding(): the
  field "meta" and one field per node index) under its content-hash key, once. Graphs are
  immutable: a key that already exists is left as it is.

  Input:
    KEYS[1] graph key (bullflow:graph:<contentHash>)
    ARGV[1..] field, value, field, value, ... (an even number, at least one pair)
  Output:
    1 (STORED) when the graph was written, 0 (ALREADY_PRESENT) when it was there already,
    -1 (BAD_ARGUMENTS) when ARGV is empty or odd.
]]
-- @include "callInChunks"

local n = #ARGV
if n == 0 or n % 2 ~= 0 then
  return -1
end
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
callInChunks("HSET", KEYS[1], ARGV, 1, 2)
return 1
