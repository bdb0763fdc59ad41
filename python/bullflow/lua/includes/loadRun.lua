--[[
  Reads a run's settings from its coordination hash into a table the other functions share:
  keys, ids, counts, the queue's key prefix, the status channel and a per-call cache of node
  records (newRun). now is the caller's clock (ms), read from the server when nil; the values of
  the run hash fields listed in extra (optional) are read in the same call, into run.extra.
  Returns nil when the run hash does not exist.
]]
-- @include "newRun"
local function loadRun(stateKey, runKey, graphKey, statusKey, runId, now, extra)
  local f = redis.call("HMGET", runKey, "bp", "n", "nd", "st", "mw", "ttl", "q", "ch", "jo", "g", unpack(extra or {}))
  if not f[1] then
    return nil
  end
  if not now then
    local t = redis.call("TIME")
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return newRun(f, stateKey, runKey, graphKey, statusKey, runId, now)
end
