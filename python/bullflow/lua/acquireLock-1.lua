--[[
  Takes a lease: sets the lock key to the caller's token for a number of milliseconds unless
  another holder has it; the holder may extend its own lease.

  Input:
    KEYS[1] lock key (bullflow:lock:<name>)
    ARGV[1] token of the caller
    ARGV[2] lease in milliseconds
  Output:
    1 (STORED) the caller holds the lock, 0 (ALREADY_PRESENT) someone else does.
]]
local holder = redis.call("GET", KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1
