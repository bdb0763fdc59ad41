--[[
  After a change: while nodes are still ready (queued or running) the run goes on; otherwise it
  ends 'failed' when a node failed, 'awaiting' when nodes wait for a resume, else 'completed'.
  Because every change runs inside one script and the count of ready nodes is kept there, the
  final status is published exactly once. Returns the status published, or nil.
]]
local function settleRun(run)
  local f = redis.call("HMGET", run.runKey, "out", "err", "aw", "ts")
  if tonumber(f[1] or "0") > 0 then
    return nil
  end
  local errors = f[2]
  run.errText, run.started = errors, f[4] -- read along for publishStatus
  if errors then
    local first = cjson.decode(errors)[1]
    publishStatus(run, "failed", first and first.message or "failed")
    return "failed"
  end
  if tonumber(f[3] or "0") > 0 then
    publishStatus(run, "awaiting", nil)
    return "awaiting"
  end
  publishStatus(run, "completed", nil)
  return "completed"
end
