--[[
  Commits one node execution in one atomic step: the node's context writes and output, the
  inputs it hands its successors, the nodes a batch scatter added, its fan-in arrivals and skips
  (RunState semantics), the BullMQ jobs of the nodes that became ready, the run's count of
  outstanding nodes and, when that reaches zero, the run's status, published once. A replay for
  a (run, node, iteration) that was committed already, or for a run that is no longer running,
  changes nothing.

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
    ARGV[2] node index
    ARGV[3] iteration the job ran
    ARGV[4] mode: "complete" | "fallback" (the node failed, its fallback node takes over) |
            "await" (the node waits for a resume) | "sleep" (resume after ARGV extra.sleepMs)
    ARGV[5] taken edge ids, comma separated; "*" = every outgoing edge
    ARGV[6] extra JSON or "": {errors: [{nodeId, message}], awaiting: <details>, sleepMs: n,
            fetching: 1 when the caller takes the next waiting job right after this commit,
            dynamic: {gather: index or -1, workers: a list of (id, definitionJSONText) pairs,
            continuation: (id, definitionJSONText)}}
    ARGV[7] number of context writes W, then W pairs (field, JSON value; "" deletes the field)
    ARGV[8+2W] number of input writes I, then I quadruples (target index, field, JSON value,
            "1" when an edge transform produced it)
    ARGV[9+2W+4I], ARGV[10+2W+4I], ARGV[11+2W+4I] (optional) the execution's attempt number,
            when it started (ms) and, in mode "fallback", the error it failed with; they go to
            the node's task record, the run log and the metrics (includes/trackNode.lua)
  Output:
    {code, number of nodes enqueued, run status after the call}: code 1 (STORED) committed,
    0 (ALREADY_PRESENT) replay of a committed or superseded execution, -2 (NOT_RUNNING) the run
    is cancelled or finished, -5 (UNKNOWN_RUN) no such run.
]]
-- @include "callInChunks"
-- @include "loadRun"
-- @include "nodeRecord"
-- @include "nodeStatus"
-- @include "setNodeStatus"
-- @include "addToSet"
-- @include "setSize"
-- @include "clearNodeSets"
-- @include "getOrSetMaxEvents"
-- @include "enqueueNode"
-- @include "makeReady"
-- @include "resetLoopBody"
-- @include "isWaitingOn"
-- @include "propagate"
-- @include "completeNodeState"
-- @include "isJsonText"
-- @include "buildStatus"
-- @include "logRun"
-- @include "countLatency"
-- @include "publishStatus"
-- @include "recordError"
-- @include "settleRun"
-- @include "enqueueReady"
-- @include "readTask"
-- @include "trackNode"

local run = loadRun(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
if not run then
  return { -5, 0, false }
end
if run.status ~= "running" then
  return { -2, 0, run.status }
end
local q = { wait = KEYS[5], meta = KEYS[6], id = KEYS[7], active = KEYS[8], events = KEYS[9],
  marker = KEYS[10], delayed = KEYS[11] }
local i = tonumber(ARGV[2])
local mode = ARGV[4]
local current = redis.call("HMGET", run.runKey, "s:" .. i, "it:" .. i)
run.statuses[i] = tonumber(current[1] or "0")
if run.statuses[i] ~= 1 or tonumber(current[2] or "0") ~= tonumber(ARGV[3]) then
  return { 0, 0, run.status }
end
local rec = nodeRecord(run, i)
local extra = {}
if ARGV[6] ~= "" then
  extra = cjson.decode(ARGV[6])
end

-- context writes (the node's own, its output and the <id> alias)
local pos = 7
local nwrites = tonumber(ARGV[pos])
local sets, dels = {}, {}
for k = 1, nwrites do
  local field, value = ARGV[pos + 2 * k - 1], ARGV[pos + 2 * k]
  if value == "" then
    dels[#dels + 1] = field
  else
    sets[#sets + 1] = field
    sets[#sets + 1] = value
  end
end
callInChunks("HDEL", run.stateKey, dels, 1, 1)
callInChunks("HSET", run.stateKey, sets, 1, 2)
pos = pos + 2 * nwrites + 1
local ninputs = tonumber(ARGV[pos])
local task = readTask(pos + 4 * ninputs + 1)
redis.call("HDEL", run.runKey, "rs:" .. i)

if mode == "sleep" then
  redis.call("HSET", run.runKey, "lu", run.now)
  local it = redis.call("HINCRBY", run.runKey, "it:" .. i, 1)
  redis.call("HSET", run.runKey, "rs:" .. i, '{"sleep":true}')
  enqueueNode(run, q, i, it, math.max(1, math.floor(tonumber(extra.sleepMs) or 0)))
  trackNode(run, i, "node-sleeping", task, nil, nil)
  return { 1, 0, run.status }
end

if mode == "await" then
  setNodeStatus(run, i, 6)
  redis.call("HSET", run.runKey, "lu", run.now)
  redis.call("HINCRBY", run.runKey, "out", -1)
  redis.call("HINCRBY", run.runKey, "aw", 1)
  local ids = cjson.decode(redis.call("HGET", run.stateKey, "_awaitingNodeIds") or "[]")
  ids[#ids + 1] = rec.id
  local detailsText = redis.call("HGET", run.stateKey, "_awaitingDetails")
  local details = detailsText and cjson.decode(detailsText) or {}
  details[rec.id] = extra.awaiting or { reason = "external_event" }
  redis.call("HSET", run.stateKey, "_awaitingNodeIds", cjson.encode(ids), "_awaitingDetails", cjson.encode(details))
  trackNode(run, i, "node-awaiting", task, nil, nil)
  local status = settleRun(run)
  return { 1, 0, status or run.status }
end

-- inputs handed to successors; a late arrival at a node that already ran changes nothing
for k = 0, ninputs - 1 do
  local t = tonumber(ARGV[pos + 4 * k + 1])
  local trec = nodeRecord(run, t)
  if nodeStatus(run, t) == 0 or trec.lc or t == rec.ls then
    redis.call("HSET", run.stateKey, ARGV[pos + 4 * k + 2], ARGV[pos + 4 * k + 3])
    if ARGV[pos + 4 * k + 4] == "1" then
      redis.call("HSET", run.runKey, "t:" .. t, 1)
    end
  end
end

if extra.errors then
  for _, e in ipairs(extra.errors) do
    recordError(run, e.nodeId, e.message)
  end
end

local workers = {}
if mode == "fallback" then
  trackNode(run, i, "node-fallback", task, task.err, "failed")
  setNodeStatus(run, i, 3)
  local w = tonumber(redis.call("HGET", run.runKey, "w:" .. i) or "0") + 1
  redis.call("HSET", run.runKey, "ff:" .. rec.fb, i)
  propagate(run, { { rec.fb, i, true } }, w)
else
  local dyn = extra.dynamic
  if dyn then
    local first = run.nstatic + run.ndynamic
    local count = #dyn.workers
    local cont = dyn.continuation
    local total = count + (cont and 1 or 0)
    local gather = tonumber(dyn.gather) or -1
    local workerIds = {}
    for k = 1, count do
      workerIds[k] = tostring(first + k - 1)
    end
    local targets = {}
    if gather >= 0 then
      targets[#targets + 1] = tostring(gather)
    end
    if cont then
      targets[#targets + 1] = tostring(first + count)
    end
    for k = 1, count do
      local node = dyn.workers[k]
      redis.call("HSET", run.runKey, "d:" .. (first + k - 1), '{"id":' .. cjson.encode(node[1]) ..
        ',"preds":[' .. i .. '],"targets":[' .. table.concat(targets, ",") .. '],"def":' .. node[2] .. "}",
        "dx:" .. node[1], first + k - 1)
      workers[k] = first + k - 1
    end
    if cont then
      local contPreds = count > 0 and table.concat(workerIds, ",") or tostring(i)
      redis.call("HSET", run.runKey, "d:" .. (first + count), '{"id":' .. cjson.encode(cont[1]) ..
        ',"preds":[' .. contPreds .. '],"targets":[' .. (gather >= 0 and gather or "") .. '],"def":' .. cont[2] .. "}",
        "dx:" .. cont[1], first + count)
    end
    redis.call("HINCRBY", run.runKey, "nd", total)
    run.ndynamic = run.ndynamic + total
    if gather >= 0 then
      for k = 0, total - 1 do
        addToSet(run, "x:" .. gather, first + k)
      end
    end
  end
  local taken = nil
  if ARGV[5] ~= "*" then
    taken = {}
    for e in string.gmatch(ARGV[5], "[^,]+") do
      taken[tonumber(e)] = true
    end
  end
  trackNode(run, i, "node-completed", task, nil, "ok")
  completeNodeState(run, i, taken)
  if #workers > 0 then
    local w = tonumber(redis.call("HGET", run.runKey, "w:" .. i) or "0") + 1
    local items = {}
    for k, t in ipairs(workers) do
      items[k] = { t, i, true }
    end
    propagate(run, items, w)
  end
end
run.fetching = extra.fetching == 1
local enqueued = enqueueReady(run, q)
redis.call("HINCRBY", run.runKey, "out", enqueued - 1)
redis.call("HSET", run.runKey, "lu", run.now)
local status = settleRun(run)
return { 1, enqueued, status or run.status }
