--[[
  Publishes the run's status: written to the status key and sent on the run's status channel.
  A final status (completed, failed, cancelled) is written once: the run hash records it, and
  the state, run and status keys get the run's TTL (0 = keep). 'awaiting' is not final.
]]
local function publishStatus(run, status, reason)
  local text = buildStatus(run, status, reason)
  redis.call("HSET", run.runKey, "st", status, "lu", run.now)
  run.status = status
  if status ~= "awaiting" and run.ttl > 0 then
    redis.call("SET", run.statusKey, text, "EX", run.ttl)
    redis.call("EXPIRE", run.stateKey, run.ttl)
    redis.call("EXPIRE", run.runKey, run.ttl)
  else
    redis.call("SET", run.statusKey, text)
  end
  redis.call("PUBLISH", run.channel, text)
  return text
end
