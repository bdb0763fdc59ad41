--[[
  Enqueues every node that became ready in this call, counts them as outstanding, and turns a
  wave-limit overflow (run.loopError) into a run error. Returns the number enqueued.
]]
local function enqueueReady(run, q)
  for _, t in ipairs(run.ready) do
    local it = tonumber(redis.call("HGET", run.runKey, "it:" .. t) or "0")
    enqueueNode(run, q, t, it, 0)
  end
  if #run.ready > 0 then
    redis.call("HINCRBY", run.runKey, "out", #run.ready)
  end
  if run.loopError then
    recordError(run, nodeRecord(run, run.loopError).id,
      "Traversal exceeded maximum iterations, possible infinite loop")
  end
  return #run.ready
end
