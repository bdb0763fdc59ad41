--[[
  Cancels a run: unless it has finished already, its status becomes 'cancelled' (published
  once, with the context as it is), and its id is sent on the cancel channel so workers signal
  the nodes running for it; queued jobs of the run are acknowledged without running.

  Input:
    KEYS[1] state hash (workflow:state:<runId>)
    KEYS[2] run hash (bullflow:run:<runId>)
    KEYS[3] status key (workflow:status:<runId>)
    ARGV[1] run id
    ARGV[2] reason
    ARGV[3] cancel channel
  Output:
    {code, run status}: 1 (STORED) cancelled now, 0 (ALREADY_PRESENT) it had finished already,
    -5 (UNKNOWN_RUN) no such run.
]]
-- @include "loadRun"
-- @include "isJsonText"
-- @include "buildStatus"
-- @include "logRun"
-- @include "latencyBucket"
-- @include "countLatency"
-- @include "publishStatus"

local run = loadRun(KEYS[1], KEYS[2], nil, KEYS[3], ARGV[1])
if not run then
  return { -5, false }
end
if run.status ~= "running" and run.status ~= "awaiting" then
  return { 0, run.status }
end
publishStatus(run, "cancelled", ARGV[2])
redis.call("PUBLISH", ARGV[3], run.id)
return { 1, "cancelled" }
