--[[
  Appends {nodeId, message} to the run's error list (run hash field "err").
]]
local function recordError(run, nodeId, message)
  local errors = cjson.decode(redis.call("HGET", run.runKey, "err") or "[]")
  errors[#errors + 1] = { nodeId = nodeId, message = message }
  redis.call("HSET", run.runKey, "err", cjson.encode(errors))
end
