--[[
  Enqueues every node that became ready in this call and turns a wave-limit overflow
  (run.loopError) into a run error. Returns the number enqueued; the caller adds it to the run's
  outstanding count ("out").
]]
-- @include "numText"
local function enqueueReady(run, q)
  -- The worker that commits takes the next waiting job in the same round trip (run.fetching):
  -- when this commit readies one node and nothing else waits, that job is the one it takes, so
  -- blocked workers are not woken for it.
  -- (With q.handoff, the first of them is handed to it: enqueueNode.)
  run.skipMarker = not q.handoff and run.fetching and #run.ready == 1 and redis.call("LLEN", q.wait) == 0
  for _, t in ipairs(run.ready) do
    local it = run.iterations[t] or tonumber(redis.call("HGET", run.runKey, "it:" .. numText(t)) or "0")
    enqueueNode(run, q, t, it, 0)
  end
  if run.loopError then
    recordError(run, nodeRecord(run, run.loopError).id,
      "Traversal exceeded maximum iterations, possible infinite loop")
  end
  return #run.ready
end
