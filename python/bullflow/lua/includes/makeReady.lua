--[[
  Node t becomes ready at wave w: status ready, its iteration counter advances when it ran
  before, its arrivals are forgotten, and it is queued in run.ready (enqueued by the caller).
  Past the run's wave limit nothing becomes ready and run.loopError names the node instead.
  previous: the node's "w:<t>" field when the caller read it (false: absent; nil: read it); it:
  its "it:<t>" field when the caller read it along (run.iterations keeps the iteration);
  setsAbsent: the caller read that t has no arrival or resolution set (nothing to forget).
]]
-- @include "numText"
-- @include "textNum"
local function makeReady(run, t, w, previous, it, setsAbsent)
  if w > run.maxWaves then
    run.loopError = run.loopError or t
    return
  end
  local n = numText(t)
  if previous == nil then
    previous = redis.call("HGET", run.runKey, "w:" .. n)
  end
  run.statuses[t] = 1
  redis.call("HSET", run.runKey, "s:" .. n, "1", "w:" .. n, numText(w))
  if previous then
    run.iterations[t] = redis.call("HINCRBY", run.runKey, "it:" .. n, "1")
  elseif it ~= nil then
    run.iterations[t] = textNum(it) or 0
  end
  if not setsAbsent then
    clearNodeSets(run, t, false)
  end
  table.insert(run.ready, t)
end
