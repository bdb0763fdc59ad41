--[[
  Records the end of an execution of node i, in the same script as the run state it changed:
  the node's task record (run hash field "k:<i>", JSON {"a": attempt, "t0": started ms, "t1":
  ended ms, "e": error} -- attempt and started are 0 when the caller did not know them), an
  entry of type kind in the run log, and, when counted is "ok" or "failed", the node counters
  of the metrics hash (nc or nf, the latency histogram "nl" from started to now) and the count
  of this minute (bullflow:metrics:m:<minute start ms>, kept for an hour).
]]
local function trackNode(run, i, kind, task, err, counted)
  local started = task.started
  local rec = '{"a":' .. task.attempt .. ',"t0":' .. started .. ',"t1":' .. run.now
  if err and err ~= "" then
    rec = rec .. ',"e":' .. cjson.encode(err)
  end
  redis.call("HSET", run.runKey, "k:" .. i, rec .. "}")
  logRun(run, kind, nodeRecord(run, i).id, err)
  if counted then
    redis.call("HINCRBY", "bullflow:metrics", counted == "ok" and "nc" or "nf", 1)
    if started > 0 then
      countLatency("nl", math.max(0, run.now - started))
    end
    local minute = "bullflow:metrics:m:" .. (run.now - run.now % 60000)
    redis.call("INCR", minute)
    redis.call("EXPIRE", minute, 3900)
  end
end
