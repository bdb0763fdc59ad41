--[[
  Takes the next waiting job for a worker as bullmq's moveToActive does (the caller checked that
  the queue is not paused or limited): from the wait list to the active list, locked by token
  for lockMs, "processedOn" now and "ats" + 1, the "active" event. Then reads what the job's
  node needs, saving the worker a round trip: its run's coordination fields and its input.
  Returns {job hash as a flat list, job id, run fields {st, g, bp}, node index or false, node
  fields {s, it, t, ff, rs, d}, the state's _inputs.<nodeId>} (false where a job is not a
  bullflow node's), or nil when nothing waits. b: the script's shared table (prefix, runPrefix,
  statePrefix, graphPrefix).
]]
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
  rcall("HSET", nextKey, "processedOn", now, "ats", ats)
  -- the reply shows the hash as written
  for _, field in ipairs({ { "processedOn", processedAt, now }, { "ats", atsAt, ats } }) do
    if field[2] then
      hash[field[2]] = tostring(field[3])
    else
      hash[#hash + 1] = field[1]
      hash[#hash + 1] = tostring(field[3])
    end
  end
  local ok, data = pcall(cjson.decode, dataText or "")
  if not ok or type(data) ~= "table" or type(data.runId) ~= "string" or type(data.nodeId) ~= "string" then
    return { hash, nextId, false, false, false, false }
  end
  local runKey = b.runPrefix .. data.runId
  local runFields = rcall("HMGET", runKey, "st", "g", "bp")
  local index = false
  if type(data.index) == "number" then
    index = data.index
  elseif runFields[2] then
    index = tonumber(rcall("HGET", b.graphPrefix .. runFields[2], "ix:" .. data.nodeId)) or false
  end
  local nodeFields = false
  if index then
    nodeFields = rcall("HMGET", runKey, "s:" .. index, "it:" .. index, "t:" .. index, "ff:" .. index,
      "rs:" .. index, "d:" .. index)
  end
  local input = rcall("HGET", b.statePrefix .. data.runId, "_inputs." .. data.nodeId)
  return { hash, nextId, runFields, index, nodeFields, input }
end
