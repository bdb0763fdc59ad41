--[[
  Node t becomes ready at wave w: status ready, its iteration counter advances when it ran
  before, its arrivals are forgotten, and it is queued in run.ready (enqueued by the caller).
  Past the run's wave limit nothing becomes ready and run.loopError names the node instead.
]]
local function makeReady(run, t, w)
  if w > run.maxWaves then
    run.loopError = run.loopError or t
    return
  end
  local previous = redis.call("HGET", run.runKey, "w:" .. t)
  run.statuses[t] = 1
  redis.call("HSET", run.runKey, "s:" .. t, 1, "w:" .. t, w)
  if previous then
    redis.call("HINCRBY", run.runKey, "it:" .. t, 1)
  end
  clearNodeSets(run, t, false)
  table.insert(run.ready, t)
end
