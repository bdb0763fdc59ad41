--[[
  Records the end of an execution of node i, in the same script as the run state it changed
  (and that change's time, the run's "lu"): the node's task record (run hash field "k:<i>",
  JSON {"a": attempt, "t0": started ms, "t1": ended ms, "e": error} -- attempt and started are 0 when the caller did not know them), an
  entry of type kind in the run log, and, when counted is "ok" or "failed", the node counters
  of the metrics hash (nc or nf, the latency histogram "nl" from started to now) and the count
  of this minute (bullflow:metrics:m:<minute start ms>, kept for an hour). With run.metrics (an
  accumulator of countNodes) the counters are added there, for the script to write once. status
  (optional) is the node's new status, written along.
]]
-- @include "numText"
local function trackNode(run, i, kind, task, err, counted, status)
  local started = task.started
  local rec = '{"a":' .. numText(task.attempt) .. ',"t0":' .. numText(started) .. ',"t1":' .. run.nowText
  if err and err ~= "" then
    rec = rec .. ',"e":' .. cjson.encode(err)
  end
  if status then
    run.statuses[i] = status
    local n = numText(i)
    redis.call("HSET", run.runKey, "k:" .. n, rec .. "}", "lu", run.nowText, "s:" .. n, numText(status))
  else
    redis.call("HSET", run.runKey, "k:" .. numText(i), rec .. "}", "lu", run.nowText)
  end
  logRun(run, kind, nodeRecord(run, i).id, err)
  if counted then
    local latency = started > 0 and math.max(0, run.now - started) or nil
    local metrics = run.metrics or newNodeCounts()
    countNode(metrics, counted, latency, run.now)
    if not run.metrics then
      writeNodeCounts(metrics)
    end
  end
end
