--[[
  Publishes the run's status: written to the status key and sent on the run's status channel,
  and logged in the run log. A final status (completed, failed, cancelled) is written once: the
  run hash records it and when ("tf"), the metrics hash counts it ("rc:<status>") and the run's
  latency from its start ("rl"), and the state, run, status and log keys get the run's TTL
  (0 = keep). 'awaiting' is not final. Either way the run hash leaves its hash-table phase
  (compactRun).
]]
-- @include "numText"
-- @include "newNodeCounts"
-- @include "countLatency"
-- @include "writeNodeCounts"
-- @include "compactRun"
local function publishStatus(run, status, reason)
  local text = buildStatus(run, status, reason)
  run.status = status
  if status == "awaiting" then
    redis.call("HSET", run.runKey, "st", status, "lu", run.nowText)
    compactRun(run.runKey, 0)
    redis.call("SET", run.statusKey, text)
  else
    redis.call("HSET", run.runKey, "st", status, "lu", run.nowText, "tf", run.nowText)
    local started = run.started
    if started == nil then
      started = redis.call("HGET", run.runKey, "ts")
    end
    started = tonumber(started or "0")
    -- counted with the script's node metrics (run.metrics) when it has them
    local metrics = run.metrics or newNodeCounts()
    metrics.other["rc:" .. status] = (metrics.other["rc:" .. status] or 0) + 1
    countLatency(metrics, "rl", math.max(0, run.now - started))
    if not run.metrics then
      writeNodeCounts(metrics)
    end
    if run.ttl > 0 then
      redis.call("SET", run.statusKey, text, "EX", numText(run.ttl))
      redis.call("EXPIRE", run.stateKey, numText(run.ttl))
      if not compactRun(run.runKey, run.ttl) then
        redis.call("EXPIRE", run.runKey, numText(run.ttl))
      end
    else
      redis.call("SET", run.statusKey, text)
      compactRun(run.runKey, 0)
    end
  end
  logRun(run, "run-" .. status, nil, reason)
  if status ~= "awaiting" and run.ttl > 0 then
    redis.call("EXPIRE", "bullflow:runlog:" .. run.id, numText(run.ttl))
  end
  redis.call("PUBLISH", run.channel, text)
  return text
end
