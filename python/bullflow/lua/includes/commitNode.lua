--[[
  One node execution's commit (the body of completeNode, which documents the arguments): A[o + k]
  is completeNode's ARGV[k], up to A[last] (A is ARGV itself: completeNode passes o = 0, finishJobs
  the offset and end of the commit's values, without copying them), stateKey..statusKey its
  KEYS[1..4], q the queue's keys {wait, meta, id, active, events, marker, delayed} (a table the
  calls of one script share: it caches the queue's event limit and pause state),
  now the script's clock (ms; nil: read it) and
  metrics an accumulator for trackNode (nil: counted at once). Returns completeNode's reply.
]]
-- @include "numText"
-- @include "textNum"
-- @include "joinFields"
-- @include "commitReadFields"
-- @include "graphRecord"
local function commitNode(A, o, last, stateKey, runKey, graphKey, statusKey, q, now, metrics)
  local i = textNum(A[o + 2])
  local mode = A[o + 4]
  -- the completion of a static node (graphRecord) that is no loop controller: its successors'
  -- statuses and joinFields are read along with the run (run.joins)
  local known = mode == "complete" and graphRecord(graphKey, i)
  local fields, targets
  if known and not known.lc then
    -- the successors and the fields to read, worked out once per node record (known.reads)
    local reads = known.reads
    if not reads then
      local n = numText(i)
      local seen, names = { [i] = true }, { commitReadFields(n) }
      targets = {}
      for _, e in ipairs(known.edges) do
        local t = e[3]
        if e[2] == i and not seen[t] then
          seen[t] = true
          targets[#targets + 1] = t
        end
      end
      if known.fb >= 0 and not seen[known.fb] then
        targets[#targets + 1] = known.fb
      end
      if #targets > 64 then
        targets = {} -- a wide fan-out: its successors are read as propagate reaches them
      end
      for _, t in ipairs(targets) do
        local tn = numText(t)
        names[#names + 1] = "s:" .. tn
        for _, field in ipairs({ joinFields(tn) }) do
          names[#names + 1] = field
        end
      end
      reads = { targets = targets, fields = names }
      known.reads = reads
    end
    targets, fields = reads.targets, reads.fields
  else
    local n = numText(i)
    targets, fields = {}, { commitReadFields(n) }
  end
  local run = loadRun(stateKey, runKey, graphKey, statusKey, A[o + 1], now, fields)
  if not run then
    return { -5, 0, false }
  end
  if run.status ~= "running" then
    return { -2, 0, run.status }
  end
  run.metrics = metrics
  if #targets > 0 then
    local current, joins = run.extra, {}
    for k, t in ipairs(targets) do
      local at = 5 + 8 * (k - 1)
      run.statuses[t] = textNum(current[at + 1]) or 0
      joins[t] = { unpack(current, at + 2, at + 8) }
    end
    run.joins = joins
  end
  local current = run.extra
  run.statuses[i] = textNum(current[1]) or 0
  if run.statuses[i] ~= 1 or (textNum(current[2]) or 0) ~= textNum(A[o + 3]) then
    return { 0, 0, run.status }
  end
  local rec = nodeRecord(run, i)
  local extra = {}
  local extraText = A[o + 6]
  if extraText == '{"fetching":1}' then
    extra = { fetching = 1 } -- a fast worker's usual extra, without decoding it
  elseif extraText ~= "" then
    extra = cjson.decode(extraText)
    if extra.dynamic then
      run.joins = nil -- the nodes it adds change a gather node's joinFields
    end
  end

  -- context writes (the node's own, its output and the <id> alias)
  local pos = o + 7
  local nwrites = textNum(A[pos])
  local sets, dels = {}, {}
  for k = 1, nwrites do
    local field, value = A[pos + 2 * k - 1], A[pos + 2 * k]
    if value == "" then
      dels[#dels + 1] = field
    else
      sets[#sets + 1] = field
      sets[#sets + 1] = value
    end
  end
  callInChunks("HDEL", run.stateKey, dels, 1, 1)
  -- the sets are written with the successors' inputs below (one HSET), or first where the
  -- commit reads the state hash (await)
  pos = pos + 2 * nwrites + 1
  local ninputs = textNum(A[pos])
  local task = readTask(pos + 4 * ninputs + 1, A, last)
  if current[3] then
    redis.call("HDEL", run.runKey, "rs:" .. numText(i))
  end

  if mode == "sleep" or mode == "await" then
    callInChunks("HSET", run.stateKey, sets, 1, 2)
    sets = {}
  end
  if mode == "sleep" then
    local it = redis.call("HINCRBY", run.runKey, "it:" .. numText(i), "1")
    redis.call("HSET", run.runKey, "rs:" .. numText(i), '{"sleep":true}')
    enqueueNode(run, q, i, it, math.max(1, math.floor(tonumber(extra.sleepMs) or 0)))
    trackNode(run, i, "node-sleeping", task, nil, nil)
    return { 1, 0, run.status }
  end

  if mode == "await" then
    setNodeStatus(run, i, 6)
    redis.call("HINCRBY", run.runKey, "out", "-1")
    redis.call("HINCRBY", run.runKey, "aw", "1")
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
  local inputs, transformed = sets, {}
  for k = 0, ninputs - 1 do
    local t = textNum(A[pos + 4 * k + 1])
    local trec = nodeRecord(run, t)
    if nodeStatus(run, t) == 0 or trec.lc or t == rec.ls then
      inputs[#inputs + 1] = A[pos + 4 * k + 2]
      inputs[#inputs + 1] = A[pos + 4 * k + 3]
      if A[pos + 4 * k + 4] == "1" then
        transformed[#transformed + 1] = "t:" .. numText(t)
        transformed[#transformed + 1] = "1"
      end
    end
  end
  callInChunks("HSET", run.stateKey, inputs, 1, 2)
  callInChunks("HSET", run.runKey, transformed, 1, 2)

  if extra.errors then
    for _, e in ipairs(extra.errors) do
      recordError(run, e.nodeId, e.message)
    end
  end

  local workers = {}
  if mode == "fallback" then
    trackNode(run, i, "node-fallback", task, task.err, "failed")
    setNodeStatus(run, i, 3)
    local w = tonumber(redis.call("HGET", run.runKey, "w:" .. numText(i)) or "0") + 1
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
    if A[o + 5] ~= "*" then
      taken = {}
      for e in string.gmatch(A[o + 5], "[^,]+") do
        taken[tonumber(e)] = true
      end
    end
    trackNode(run, i, "node-completed", task, nil, "ok", 3)
    completeNodeState(run, i, taken, { current[4], current[5] })
    if #workers > 0 then
      local w = tonumber(redis.call("HGET", run.runKey, "w:" .. numText(i)) or "0") + 1
      local items = {}
      for k, t in ipairs(workers) do
        items[k] = { t, i, true }
      end
      propagate(run, items, w)
    end
  end
  run.fetching = extra.fetching == 1
  local enqueued = enqueueReady(run, q)
  local status = nil
  -- this node leaves the outstanding count and the enqueued ones join it (one for one: no change,
  -- and the count stays above 0)
  if enqueued ~= 1 and redis.call("HINCRBY", run.runKey, "out", numText(enqueued - 1)) <= 0 then
    status = settleRun(run)
  end
  return { 1, enqueued, status or run.status }
end
