--[[
  Adds the executeNode job of node i (iteration it) to the BullMQ queue exactly as bullmq's
  addStandardJob / addDelayedJob scripts (bullmq 3.4.4) do for a job with a custom id and no
  parent, deduplication or repeat options: job hash {name, data, opts, timestamp, delay,
  priority}, "added" + "waiting"/"delayed" events, the wait list or the delayed set, and the
  marker that wakes blocked workers. Job id: <runId>_<nodeId>, plus _<it> after the first
  iteration. A job id that exists already is left alone (bullmq's duplicate rule). q is the
  table of queue keys {wait, meta, id, active, events, marker, delayed}; it caches the queue's
  meta fields (readQueueMeta) and pause state for the script, and counts the jobs added in
  q.added for the id counter (the script ends with writeJobCounter). With run.skipMarker the
  marker that wakes blocked workers is not set (the committing worker takes the job itself).
  With q.handoff (a worker slot of finishJobs that wants its next job and has none yet), the
  first job without delay is handed to that slot instead of the wait list (when the queue is
  open for takes: openForTakes): the job hash as moveToActive leaves it and the "added" event
  are written, q.handoff records the job, and the caller places it with placeHandoff.
]]
-- @include "numText"
-- @include "readQueueMeta"
-- @include "openForTakes"
local function enqueueNode(run, q, i, it, delay)
  local rec = nodeRecord(run, i)
  local jobId = run.id .. "_" .. rec.id
  if it > 0 then
    jobId = jobId .. "_" .. numText(it)
  end
  local jobKey = run.queue .. jobId
  readQueueMeta(q)
  local maxEvents = q.maxEvents
  q.added = (q.added or 0) + 1 -- bullmq's INCR of the id counter, written by writeJobCounter
  if redis.call("EXISTS", jobKey) == 1 then
    redis.call("XADD", q.events, "MAXLEN", "~", maxEvents, "*", "event", "duplicated", "jobId", jobId)
    return jobId
  end
  local data = '{"runId":' .. cjson.encode(run.id) .. ',"blueprintId":' .. cjson.encode(run.blueprintId) ..
    ',"nodeId":' .. cjson.encode(rec.id)
  if it > 0 then
    data = data .. ',"iteration":' .. numText(it)
  end
  if i >= run.nstatic then
    data = data .. ',"index":' .. numText(i)
  end
  data = data .. "}"
  local opts = '{"jobId":' .. cjson.encode(jobId) .. rec.opts .. run.jobOpts
  if delay > 0 then
    opts = opts .. ',"delay":' .. delay
  end
  opts = opts .. "}"
  local handoff = q.handoff
  if delay == 0 and handoff and not handoff.jobId and openForTakes(q, run.now) and not q.limit then
    -- handed to the committing worker slot: the caller places it (placeHandoff) once that
    -- slot's job is completed; written as moveToActive leaves a job it takes
    local fields = { "name", "executeNode", "data", data, "opts", opts, "timestamp", run.nowText,
      "delay", "0", "priority", "0", "processedOn", run.nowText, "ats", "1" }
    redis.call("HSET", jobKey, unpack(fields))
    redis.call("XADD", q.events, "*", "event", "added", "jobId", jobId, "name", "executeNode")
    handoff.jobId, handoff.fields, handoff.index, handoff.nodeId = jobId, fields, i, rec.id
    handoff.runKey, handoff.stateKey = run.runKey, run.stateKey
    return jobId
  end
  redis.call("HMSET", jobKey, "name", "executeNode", "data", data, "opts", opts, "timestamp", run.nowText,
    "delay", numText(delay), "priority", "0")
  redis.call("XADD", q.events, "*", "event", "added", "jobId", jobId, "name", "executeNode")
  if delay > 0 then
    local at = run.now + delay
    local minScore = at * 0x1000
    local maxScore = (at + 1) * 0x1000 - 1
    local score = minScore
    local last = redis.call("ZREVRANGEBYSCORE", q.delayed, maxScore, minScore, "WITHSCORES", "LIMIT", 0, 1)
    local current = tonumber(last[2])
    if current ~= nil then
      score = current >= maxScore and maxScore or current + 1
    end
    redis.call("ZADD", q.delayed, score, jobId)
    redis.call("XADD", q.events, "MAXLEN", "~", maxEvents, "*", "event", "delayed", "jobId", jobId, "delay", at)
    local first = redis.call("ZRANGE", q.delayed, 0, 0, "WITHSCORES")
    local nextAt = tonumber(first[2])
    if nextAt ~= nil then
      redis.call("ZADD", q.marker, nextAt / 0x1000, "1")
    end
  else
    if q.pausedOrMaxed == nil then
      q.pausedOrMaxed = q.paused or (q.concurrency ~= nil and redis.call("LLEN", q.active) >= q.concurrency)
    end
    local pausedOrMaxed = q.pausedOrMaxed
    redis.call("LPUSH", q.wait, jobId)
    if not pausedOrMaxed and not run.skipMarker and not q.marked then
      redis.call("ZADD", q.marker, "0", "0")
      q.marked = true -- nothing pops it before the script ends
    end
    redis.call("XADD", q.events, "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId)
  end
  return jobId
end
