--[[
  Extends a runner's lease while it works (its heartbeat); refuses when the lease is no longer the
  caller's or the instance's epoch moved on (terminate, restart).

  Input:
    KEYS[1] instance hash (P:wf:{id})
    KEYS[2] lease (P:wf:{id}:lease)
    ARGV[1] lease token
    ARGV[2] lease duration, ms
  Output:
    1 (STORED) extended; -10 (FENCED) the caller lost the instance.
]]
-- @include "durableFence"

if not durableFence(KEYS[1], KEYS[2], ARGV[1]) then
  return -10
end
redis.call("PEXPIRE", KEYS[2], ARGV[2])
return 1
