--[[
  Takes the next waiting job for a worker as bullmq's moveToActive does (the caller checked that
  the queue is not paused or limited): from the wait list to the active list, locked by token
  for lockMs, "processedOn" now and "ats" + 1, the "active" event. Then reads what the job's
  node needs, saving the worker a round trip: its run's coordination fields and its input.
  Returns {job hash as a flat list, job id, run fields {st, g, bp}, node index or false, node
  fields {s, it, t, ff, rs, d}, the state's _inputs.<nodeId>} (false where a job is not a
  bullflow node's), or nil when nothing waits. b: the script's shared table (prefix, runPrefix,
  statePrefix, graphPrefix, and indices: a cache of node indices this fills).
]]
-- @include "numText"
-- @include "nodeReadFields"
local function takeJob(b, q, token, lockMs, now)
  local rcall = redis.call
  local nextId = rcall("RPOPLPUSH", q.wait, q.active)
  if not nextId then
    return nil
  end
  local nextKey = b.prefix .. nextId
  rcall("SET", nextKey .. ":lock", token, "PX", lockMs)
  rcall("XADD", q.events, "*", "event", "active", "jobId", nextId, "prev", "waiting")
  local hash = rcall("HGETALL", nextKey)
  local dataText, atsAt, processedAt = nil, nil, nil
  for k = 1, #hash, 2 do
    local field = hash[k]
    if field == "data" then
      dataText = hash[k + 1]
    elseif field == "ats" then
      atsAt = k + 1
    elseif field == "processedOn" then
      processedAt = k + 1
    end
  end
  local ats = (atsAt and tonumber(hash[atsAt]) or 0) + 1
  rcall("HSET", nextKey, "processedOn", numText(now), "ats", numText(ats))
  -- the reply shows the hash as written
  for _, field in ipairs({ { "processedOn", processedAt, now }, { "ats", atsAt, ats } }) do
    if field[2] then
      hash[field[2]] = numText(field[3])
    else
      hash[#hash + 1] = field[1]
      hash[#hash + 1] = numText(field[3])
    end
  end
  local data = nil
  -- the data as enqueueNode writes it for a node's first iteration, read without decoding it
  local runId, blueprintId, nodeId, rest = string.match(dataText or "",
    '^{"runId":"([^"\\]*)","blueprintId":"([^"\\]*)","nodeId":"([^"\\]*)"(.*)$')
  if rest == "}" or (rest and string.find(rest, '^,"iteration":%d+}$')) then
    data = { runId = runId, blueprintId = blueprintId, nodeId = nodeId }
  else
    local ok, decoded = pcall(cjson.decode, dataText or "")
    if not ok or type(decoded) ~= "table" or type(decoded.runId) ~= "string" or type(decoded.nodeId) ~= "string" then
      return { hash, nextId, false, false, false, false }
    end
    data = decoded
  end
  local runKey = b.runPrefix .. data.runId
  -- the node's index: the job's own (a node added while the run runs), else the graph's, which
  -- the script remembers per blueprint and node id: then one read gets the run's and the node's
  -- fields, and a second only when the run turns out to use another graph
  local index = type(data.index) == "number" and data.index or false
  local known = index and { graph = false, index = index } or b.indices[tostring(data.blueprintId) .. "\0" .. data.nodeId]
  local f
  if known then
    local i = known.index
    local n = numText(i)
    f = rcall("HMGET", runKey, "st", "g", "bp", nodeReadFields(n))
    if known.graph and f[2] ~= known.graph then
      known = nil
    else
      index = i
    end
  end
  if not known then
    f = rcall("HMGET", runKey, "st", "g", "bp")
    index = f[2] and tonumber(rcall("HGET", b.graphPrefix .. f[2], "ix:" .. data.nodeId)) or false
    if index then
      b.indices[tostring(data.blueprintId) .. "\0" .. data.nodeId] = { graph = f[2], index = index }
      local n = numText(index)
      local g = rcall("HMGET", runKey, nodeReadFields(n))
      for k = 1, 6 do
        f[k + 3] = g[k]
      end
    end
  end
  local runFields = { f[1], f[2], f[3] }
  local nodeFields = false
  if index then
    nodeFields = { f[4], f[5], f[6], f[7], f[8], f[9] }
  end
  local input = rcall("HGET", b.statePrefix .. data.runId, "_inputs." .. data.nodeId)
  return { hash, nextId, runFields, index, nodeFields, input }
end
