--[[
  The worker's fast path, after a node's commit (completeNode, pipelined just before): marks the
  node's BullMQ job completed and takes the next job, as bullmq's moveToFinished (with fetchNext)
  and moveToActive do for a job without parent, dependencies or deduplication on a queue without
  rate limit; and reads what the next job's node needs (its run's coordination fields and its
  input), saving the worker a round trip. A job outside that common case, or a queue that is rate
  limited, paused, at its global concurrency or has only prioritized jobs, is left to bullmq's own
  scripts: the code says which. A job with failed children, or an age limit that would remove a
  completed child job, is left to bullmq's moveToFinished as well.

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
    KEYS[10] the finished job's hash (bull:<queue>:<jobId>)
    ARGV[1] queue key prefix (bull:<queue>:)
    ARGV[2] finished job id
    ARGV[3] lock token
    ARGV[4] lock duration (ms) of the next job
    ARGV[5] completed jobs to keep: -1 all, 0 none, n the newest n
    ARGV[6] completed jobs' maximum age in seconds, or "" (no age limit)
    ARGV[7] "1" to take the next job
    ARGV[8] run hash prefix (bullflow:run:)
    ARGV[9] state hash prefix (workflow:state:)
    ARGV[10] graph hash prefix (bullflow:graph:)
  Output:
    {code, next job or false}: code 1 (STORED) the job is completed; -7 (USE_BULLMQ) nothing was
    done (also when the job is gone, not active or not locked by this token): finish it with
    bullmq's moveToFinished, which reports such errors as bullmq does. The next job is {job hash
    as a flat list, job id, run fields {st, g, bp}, node index or false, node fields {s, it, t,
    ff, rs, d}, the state's _inputs.<nodeId>}.
]]
-- @include "getOrSetMaxEvents"

local rcall = redis.call
local prefix = ARGV[1]
local jobId = ARGV[2]
local jobKey = KEYS[10]
if rcall("EXISTS", jobKey) ~= 1 then
  return { -7, false }
end
local attributes = rcall("HMGET", jobKey, "parentKey", "parent", "deid")
if attributes[1] or attributes[2] or attributes[3] or rcall("SCARD", jobKey .. ":dependencies") ~= 0
  or rcall("ZCARD", jobKey .. ":unsuccessful") ~= 0 then
  return { -7, false }
end
local lockKey = jobKey .. ":lock"
if rcall("GET", lockKey) ~= ARGV[3] or not rcall("LPOS", KEYS[2], jobId) then
  return { -7, false }
end
local t = rcall("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[5])
-- completed jobs past the age limit; a child job among them (its parent's bookkeeping) is left,
-- with this whole job, to bullmq's moveToFinished
local aged = {}
if keep ~= 0 and ARGV[6] ~= "" then
  aged = rcall("ZREVRANGEBYSCORE", KEYS[8], now - tonumber(ARGV[6]) * 1000, "-inf", "LIMIT", 0, 1000)
  for _, id in ipairs(aged) do
    local old = rcall("HMGET", prefix .. id, "parentKey", "parent")
    if old[1] or old[2] then
      return { -7, false }
    end
  end
end
rcall("LREM", KEYS[2], -1, jobId)
rcall("DEL", lockKey)
rcall("SREM", KEYS[7], jobId)
local maxEvents = getOrSetMaxEvents(KEYS[3])
rcall("XTRIM", KEYS[4], "MAXLEN", "~", maxEvents)
rcall("HINCRBY", jobKey, "atm", 1)
if keep ~= 0 then
  rcall("ZADD", KEYS[8], now, jobId)
  rcall("HSET", jobKey, "returnvalue", "null", "finishedOn", now)
  for _, id in ipairs(aged) do
    local key = prefix .. id
    rcall("DEL", key, key .. ":logs", key .. ":dependencies", key .. ":processed", key .. ":failed",
      key .. ":unsuccessful")
    rcall("ZREM", KEYS[8], id)
  end
  if keep > 0 then
    local extra = rcall("ZREVRANGE", KEYS[8], keep, -1)
    for _, id in ipairs(extra) do
      local key = prefix .. id
      rcall("DEL", key, key .. ":logs", key .. ":dependencies", key .. ":processed", key .. ":failed",
        key .. ":unsuccessful")
    end
    rcall("ZREMRANGEBYRANK", KEYS[8], 0, -(keep + 1))
  end
else
  rcall("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies", jobKey .. ":processed",
    jobKey .. ":failed", jobKey .. ":unsuccessful")
end
rcall("XADD", KEYS[4], "*", "event", "completed", "jobId", jobId, "returnvalue", "null", "prev", "active")

-- no next job: the "drained" event when nothing is left, as moveToFinished emits it
local function noNext()
  if rcall("LLEN", KEYS[1]) == 0 and rcall("LLEN", KEYS[2]) == 0 and rcall("ZCARD", KEYS[9]) == 0 then
    rcall("XADD", KEYS[4], "*", "event", "drained")
  end
  return { 1, false }
end

if ARGV[7] ~= "1" then
  return noNext()
end
local meta = rcall("HMGET", KEYS[3], "paused", "concurrency", "max")
if meta[1] or meta[3] or (meta[2] and rcall("LLEN", KEYS[2]) >= tonumber(meta[2])) then
  return noNext()
end
-- due delayed jobs go to wait first, as moveToActive's promoteDelayedJobs does
local due = rcall("ZRANGEBYSCORE", KEYS[5], 0, (now + 1) * 0x1000 - 1, "LIMIT", 0, 1000)
for _, id in ipairs(due) do
  if (tonumber(rcall("HGET", prefix .. id, "priority")) or 0) ~= 0 then
    return noNext() -- a prioritized job is due: bullmq's moveToActive promotes them
  end
end
for _, id in ipairs(due) do
  rcall("ZREM", KEYS[5], id)
  rcall("LPUSH", KEYS[1], id)
  rcall("XADD", KEYS[4], "*", "event", "waiting", "jobId", id, "prev", "delayed")
  rcall("HSET", prefix .. id, "delay", 0)
end
if #due > 0 then
  rcall("ZADD", KEYS[6], 0, "0")
end
local nextId = rcall("RPOPLPUSH", KEYS[1], KEYS[2])
if not nextId then
  return noNext()
end
local nextKey = prefix .. nextId
rcall("SET", nextKey .. ":lock", ARGV[3], "PX", ARGV[4])
rcall("XADD", KEYS[4], "*", "event", "active", "jobId", nextId, "prev", "waiting")
rcall("HMSET", nextKey, "processedOn", now)
rcall("HINCRBY", nextKey, "ats", 1)
rcall("ZADD", KEYS[6], 0, "0")
local hash = rcall("HGETALL", nextKey)
-- what the node needs: its run's fields and its input
local dataText = rcall("HGET", nextKey, "data")
local ok, data = pcall(cjson.decode, dataText or "")
if not ok or type(data) ~= "table" or type(data.runId) ~= "string" or type(data.nodeId) ~= "string" then
  return { 1, { hash, nextId, false, false, false, false } }
end
local runKey = ARGV[8] .. data.runId
local runFields = rcall("HMGET", runKey, "st", "g", "bp")
local index = false
if type(data.index) == "number" then
  index = data.index
elseif runFields[2] then
  index = tonumber(rcall("HGET", ARGV[10] .. runFields[2], "ix:" .. data.nodeId)) or false
end
local nodeFields = false
if index then
  nodeFields = rcall("HMGET", runKey, "s:" .. index, "it:" .. index, "t:" .. index, "ff:" .. index,
    "rs:" .. index, "d:" .. index)
end
local input = rcall("HGET", ARGV[9] .. data.runId, "_inputs." .. data.nodeId)
return { 1, { hash, nextId, runFields, index, nodeFields, input } }
