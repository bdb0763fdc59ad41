--[[
  After a change: while nodes are still ready (queued or running) the run goes on; otherwise it
  ends 'failed' when a node failed, 'awaiting' when nodes wait for a resume, else 'completed'.
  Because every change runs inside one script and the count of ready nodes is kept there, the
  final status is published exactly once. Returns the status published, or nil.
]]
local function settleRun(run)
  if tonumber(redis.call("HGET", run.runKey, "out") or "0") > 0 then
    return nil
  end
  local errors = redis.call("HGET", run.runKey, "err")
  if errors then
    local first = cjson.decode(errors)[1]
    publishStatus(run, "failed", first and first.message or "failed")
    return "failed"
  end
  if tonumber(redis.call("HGET", run.runKey, "aw") or "0") > 0 then
    publishStatus(run, "awaiting", nil)
    return "awaiting"
  end
  publishStatus(run, "completed", nil)
  return "completed"
end
