--[[
  Starts a run of a stored graph: creates the run hash, writes the initial context (each value
  JSON text, plus blueprintId and blueprintVersion when missing), makes the start nodes ready
  (never fallback-only nodes) and enqueues their jobs. With adopt = "1" the run was started by a
  Flowcraft-style client that wrote the context and enqueued the start jobs itself: the run hash
  is created and the start nodes marked ready, nothing is enqueued. A second start of the same
  run id changes nothing.

  Input:
    KEYS[1] state hash (workflow:state:<runId>)
    KEYS[2] run hash (bullflow:run:<runId>)
    KEYS[3] graph hash (bullflow:graph:<contentHash>)
    KEYS[4] status key (workflow:status:<runId>)
    KEYS[5] queue wait list
    KEYS[6] queue meta hash
    KEYS[7] queue id counter
    KEYS[8] queue active list
    KEYS[9] queue events stream
    KEYS[10] queue marker zset
    KEYS[11] queue delayed zset
    ARGV[1] run id
    ARGV[2] blueprint id
    ARGV[3] queue key prefix (bull:<queue>:)
    ARGV[4] status channel
    ARGV[5] TTL in seconds of a finished run's keys (0 = keep)
    ARGV[6] wave limit (loop guard)
    ARGV[7] job options JSON fragment added to every job, without its leading comma
            ("\"removeOnComplete\":..."), so the default fits a compact (listpack) run hash once
            the run ends (includes/compactRun.lua)
    ARGV[8] "1" to adopt a run a client started, else "0"
    ARGV[9] blueprintVersion as JSON text
    ARGV[10..] initial context: field, JSON value, field, JSON value, ...
  The run is added to the run index (ZSET bullflow:runs, run id -> start ms) and its log gets a
  run-started entry. The state hash of a graph of 43 nodes or more is made a hash table
  (includes/tableState.lua).

  Output:
    {code, number of jobs enqueued, run status}: 1 (STORED) started, 0 (ALREADY_PRESENT) the run
    exists, -4 (GRAPH_MISSING) no graph stored under KEYS[3], -1 (BAD_ARGUMENTS) odd context or
    a job options fragment that starts with a comma.
]]
-- @include "numText"
-- @include "graphMeta"
-- @include "callInChunks"
-- @include "newRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "setNodeStatus"
-- @include "clearNodeSets"
-- @include "readQueueMeta"
-- @include "enqueueNode"
-- @include "writeJobCounter"
-- @include "makeReady"
-- @include "isJsonText"
-- @include "buildStatus"
-- @include "logRun"
-- @include "latencyBucket"
-- @include "countLatency"
-- @include "publishStatus"
-- @include "recordError"
-- @include "settleRun"
-- @include "enqueueReady"
-- @include "tableState"

if redis.call("EXISTS", KEYS[2]) == 1 then
  return { 0, 0, redis.call("HGET", KEYS[2], "st") }
end
local metaText = redis.call("HGET", KEYS[3], "meta")
if not metaText then
  return { -4, 0, false }
end
if (#ARGV - 9) % 2 ~= 0 or string.sub(ARGV[7], 1, 1) == "," then
  return { -1, 0, false }
end
local meta = graphMeta(metaText)
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local run = newRun({ ARGV[2], meta.nodes, 0, "running", ARGV[6], ARGV[5], ARGV[3], ARGV[4], ARGV[7], meta.hash },
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], now)
-- every start node becomes ready at wave 1 (makeReady below), unless the wave limit is below 1
local starts = run.maxWaves >= 1 and #meta.start or 0
-- "hx": a filler longer than a listpack value (tableState's), so the run hash is a hash table while the run
-- runs (compactRun, when its status is published, makes it compact again)
redis.call("HSET", KEYS[2], "bp", ARGV[2], "g", meta.hash, "n", numText(meta.nodes), "nd", "0", "st", "running",
  "out", numText(starts), "aw", "0", "mw", ARGV[6], "ttl", ARGV[5], "q", ARGV[3], "ch", ARGV[4], "jo", ARGV[7],
  "ts", run.nowText, "lu", run.nowText, "hx", hashTableFiller)
local adopt = ARGV[8] == "1"
if not adopt and #ARGV >= 10 then
  callInChunks("HSET", KEYS[1], ARGV, 10, 2)
end
redis.call("HSETNX", KEYS[1], "blueprintId", cjson.encode(ARGV[2]))
redis.call("HSETNX", KEYS[1], "blueprintVersion", ARGV[9])
tableState(KEYS[1], meta.nodes)
local q = { wait = KEYS[5], meta = KEYS[6], id = KEYS[7], active = KEYS[8], events = KEYS[9],
  marker = KEYS[10], delayed = KEYS[11] }
redis.call("ZADD", "bullflow:runs", run.nowText, ARGV[1])
logRun(run, "run-started", nil, adopt and "adopted" or "")
for _, s in ipairs(meta.start) do
  makeReady(run, s, 1, false, false, true) -- a new run: no wave, iteration or sets yet
end
local enqueued = 0
if not adopt then
  enqueued = enqueueReady(run, q)
end
local status = nil
if starts == 0 then
  status = settleRun(run) -- nothing to run: the run ends now
end
writeJobCounter(q)
return { 1, enqueued, status or run.status }
