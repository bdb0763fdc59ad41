--[[
  The worker's fast path, for a batch of its jobs in one call: for each job, the node's commit
  (completeNode's, optional), then the job marked completed (bullmq's moveToFinished for a job
  without parent, dependencies or deduplication); then, for every job whose worker slot asks for
  one, the next waiting job taken (bullmq's moveToActive) with what its node needs read along
  (its run's coordination fields and its input); a slot whose commit readies a node is handed
  that node's job instead (enqueueNode, placeHandoff: it never waits). Node metrics are counted
  once per call. A job outside that common case, or a queue that is rate limited, paused, at its
  global concurrency or has only prioritized jobs, is left to bullmq's own scripts: its code
  says which. The run keys of the commits are arguments (the queue's keys and the runs' are not
  in one cluster slot).

  Input:
    KEYS[1] queue wait list
    KEYS[2] queue active list
    KEYS[3] queue meta hash
    KEYS[4] queue events stream
    KEYS[5] queue delayed zset
    KEYS[6] queue marker zset
    KEYS[7] queue stalled set
    KEYS[8] queue completed zset
    KEYS[9] queue prioritized zset
    KEYS[10] queue id counter
    ARGV[1] queue key prefix (bull:<queue>:)
    ARGV[2] lock duration (ms) of the jobs taken
    ARGV[3] run hash prefix (bullflow:run:)
    ARGV[4] state hash prefix (workflow:state:)
    ARGV[5] graph hash prefix (bullflow:graph:)
    ARGV[6] number of jobs N, then N groups: job id ("" none: a slot that only takes a job,
            as bullmq's moveToActive would), lock token, completed jobs to keep (-1 all, 0 none,
            n the newest n), completed jobs' maximum age in seconds or "" (none), "1" to take a
            next job for this slot, C the number of commit values, then C values: none (no
            commit), or completeNode's KEYS[1..4] (state, run, graph and status keys of the
            node's run) followed by completeNode's ARGV
  Output:
    One flat array (bullflow.job_batch.decode_finish_replies reads it): N, then for each job its
    code, its commit reply and its next job. code 1 (STORED) the job is completed (or there was
    none); -7 (USE_BULLMQ) nothing was done for the job (also when it is gone, not active or not
    locked by this token): finish it with bullmq's moveToFinished, which reports such errors as
    bullmq does. The commit reply is 0 (no commit), 1 and completeNode's code, enqueued and
    status, or 2 and the error text when the commit raised one (the job is completed all the
    same; the reconciler runs the node again). The next job is 0 (none), or M and the M values
    of its job hash (a flat list), its id, 0 or 1 and its run's fields st, g and bp, its node
    index or false, 0 or 1 and its node's fields s, it, t, ff, rs and d, and the state's
    _inputs.<nodeId> (the run's and node's fields are left out when it is not a bullflow
    node's job).
]]
-- @include "numText"
-- @include "textNum"
-- @include "callInChunks"
-- @include "loadRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "setNodeStatus"
-- @include "addToSet"
-- @include "clearNodeSets"
-- @include "readQueueMeta"
-- @include "openForTakes"
-- @include "enqueueNode"
-- @include "writeJobCounter"
-- @include "makeReady"
-- @include "resetLoopBody"
-- @include "isWaitingOn"
-- @include "resolveAt"
-- @include "propagate"
-- @include "completeNodeState"
-- @include "isJsonText"
-- @include "buildStatus"
-- @include "logRun"
-- @include "latencyBucket"
-- @include "countLatency"
-- @include "publishStatus"
-- @include "recordError"
-- @include "settleRun"
-- @include "enqueueReady"
-- @include "readTask"
-- @include "newNodeCounts"
-- @include "countNode"
-- @include "writeNodeCounts"
-- @include "trackNode"
-- @include "commitNode"
-- @include "completeJob"
-- @include "nodeReadFields"
-- @include "takeJob"
-- @include "placeHandoff"
-- @include "appendFields"

local rcall = redis.call
local t = rcall("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local q = { wait = KEYS[1], active = KEYS[2], meta = KEYS[3], events = KEYS[4], delayed = KEYS[5],
  marker = KEYS[6], id = KEYS[10], prefix = ARGV[1] }
local b = { prefix = ARGV[1], active = KEYS[2], stalled = KEYS[7], completed = KEYS[8],
  runPrefix = ARGV[3], statePrefix = ARGV[4], graphPrefix = ARGV[5], aged = {}, indices = {} }
local counts = newNodeCounts()
local replies = {}
local takers = {}
local handed = {}
local finished = 0
local pos = 7
for e = 1, tonumber(ARGV[6]) do
  local jobId, token, keep, age = ARGV[pos], ARGV[pos + 1], textNum(ARGV[pos + 2]), ARGV[pos + 3]
  local fetch = ARGV[pos + 4] == "1"
  local ncommit = textNum(ARGV[pos + 5])
  local committed = false
  -- a slot that wants its next job gets the first job its commit readies (enqueueNode)
  q.handoff = fetch and jobId ~= "" and {} or nil
  if ncommit > 0 then
    -- the commit's values: its keys at ARGV[pos + 6 ..], completeNode's ARGV from ARGV[pos + 10] on
    local ok, reply = pcall(commitNode, ARGV, pos + 9, pos + 5 + ncommit, ARGV[pos + 6], ARGV[pos + 7],
      ARGV[pos + 8], ARGV[pos + 9], q, now, counts)
    if ok then
      committed = reply
    else
      committed = type(reply) == "table" and tostring(reply.err) or tostring(reply)
    end
  end
  local handoff = q.handoff
  q.handoff = nil
  local code = 1
  if jobId == "" then
    -- no job to finish: a slot that wants one (what bullmq's moveToActive would take) or nothing
    if fetch then
      takers[#takers + 1] = { e, token }
    end
  else
    code = completeJob(b, q, jobId, token, keep, age, now)
    if handoff and handoff.jobId then
      placeHandoff(q, handoff, code == 1, token, ARGV[2])
      if code == 1 then
        handed[#handed + 1] = { e, handoff }
      end
    end
    if code == 1 then
      finished = finished + 1
      if fetch and not (handoff and handoff.jobId) then
        takers[#takers + 1] = { e, token }
      end
    end
  end
  replies[e] = { code, false, committed }
  pos = pos + 6 + ncommit
end
writeNodeCounts(counts)
writeJobCounter(q)
if finished > 0 then
  readQueueMeta(q)
  rcall("XTRIM", q.events, "MAXLEN", "~", q.maxEvents)
end

-- the jobs handed to slots: what their nodes need, read once every commit is done
for _, slot in ipairs(handed) do
  local h = slot[2]
  local n = numText(h.index)
  local f = rcall("HMGET", h.runKey, "st", "g", "bp", nodeReadFields(n))
  local input = rcall("HGET", h.stateKey, "_inputs." .. h.nodeId)
  replies[slot[1]][2] = { h.fields, h.jobId, { f[1], f[2], f[3] }, h.index, { f[4], f[5], f[6], f[7], f[8], f[9] },
    input }
end

-- the next waiting jobs for the other slots: none when the queue is paused, rate limited or at
-- its global concurrency
local taken = #handed
if #takers > 0 and openForTakes(q, now) then
  local limit = q.limit
  local took = 0
  for _, taker in ipairs(takers) do
    if limit and rcall("LLEN", q.active) >= limit then
      break
    end
    local job = takeJob(b, q, taker[2], ARGV[2], now)
    if not job then
      break
    end
    replies[taker[1]][2] = job
    took = took + 1
  end
  -- jobs still wait: wake a blocked worker for them (unless a job queued in this call did)
  if took > 0 and not q.marked and rcall("LLEN", q.wait) > 0 then
    rcall("ZADD", q.marker, "0", "0")
  end
  taken = taken + took
end
-- a slot that found no next job: the "drained" event when nothing is left, as moveToFinished
-- emits it
if finished > taken and rcall("LLEN", q.wait) == 0 and rcall("LLEN", q.active) == 0
  and rcall("ZCARD", KEYS[9]) == 0 then
  rcall("XADD", q.events, "*", "event", "drained")
end

-- one flat array (each table in a reply costs redis' reply conversion ~3k instructions): N, then
-- per job its code, its commit (0 none | 1 code enqueued status | 2 error text) and its next job
-- (0 none | M, the M values of its job hash, its id, 0 | 1 st g bp, its node index or false,
-- 0 | 1 s it t ff rs d, its input)
local out = { #replies }
local n = 1
for e = 1, #replies do
  local r = replies[e]
  local committed, job = r[3], r[2]
  out[n + 1] = r[1]
  if committed and type(committed) ~= "table" then
    out[n + 2], out[n + 3] = 2, committed -- the error text of a commit that raised
    n = n + 3
  else
    n = appendFields(out, n + 1, committed, 3)
  end
  if not job then
    out[n + 1] = 0
    n = n + 1
  else
    local flat = job[1]
    local m = #flat
    out[n + 1] = m
    for k = 1, m do
      out[n + 1 + k] = flat[k]
    end
    n = n + 2 + m
    out[n] = job[2]
    n = appendFields(out, n, job[3], 3)
    out[n + 1] = job[4] or false
    n = appendFields(out, n + 1, job[5], 6)
    out[n + 1] = job[6] or false
    n = n + 1
  end
end
return out
