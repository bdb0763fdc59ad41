--[[
  Publishes the run's status: written to the status key and sent on the run's status channel,
  and logged in the run log. A final status (completed, failed, cancelled) is written once: the
  run hash records it and when ("tf"), the metrics hash counts it ("rc:<status>") and the run's
  latency from its start ("rl"), and the state, run, status and log keys get the run's TTL
  (0 = keep). 'awaiting' is not final.
]]
local function publishStatus(run, status, reason)
  local text = buildStatus(run, status, reason)
  run.status = status
  if status == "awaiting" then
    redis.call("HSET", run.runKey, "st", status, "lu", run.nowText)
    redis.call("SET", run.statusKey, text)
  else
    redis.call("HSET", run.runKey, "st", status, "lu", run.nowText, "tf", run.nowText)
    redis.call("HINCRBY", "bullflow:metrics", "rc:" .. status, 1)
    local started = run.started
    if started == nil then
      started = redis.call("HGET", run.runKey, "ts")
    end
    started = tonumber(started or "0")
    countLatency("rl", math.max(0, run.now - started))
    if run.ttl > 0 then
      redis.call("SET", run.statusKey, text, "EX", run.ttl)
      redis.call("EXPIRE", run.stateKey, run.ttl)
      redis.call("EXPIRE", run.runKey, run.ttl)
    else
      redis.call("SET", run.statusKey, text)
    end
  end
  logRun(run, "run-" .. status, nil, reason)
  if status ~= "awaiting" and run.ttl > 0 then
    redis.call("EXPIRE", "bullflow:runlog:" .. run.id, run.ttl)
  end
  redis.call("PUBLISH", run.channel, text)
  return text
end
