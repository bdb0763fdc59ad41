--[[
  Marks job jobId (active, locked by token) completed as bullmq's moveToFinished does for a job
  without parent, dependencies or deduplication: out of the active list, lock and stalled set
  gone, "atm" + 1, returnvalue null and finishedOn now, the "completed" event; kept in the
  completed set (keep: -1 all, 0 none -- the job's keys are deleted --, n the newest n) unless
  older than age seconds (age "" none). Returns 1, or -7 (USE_BULLMQ) having done nothing when
  the job is gone, not active, not locked by token, has a parent, dependencies, failed
  children or deduplication, or when an aged completed job to remove is a child job. b is the
  script's shared table: prefix (the queue key prefix), completed, active and stalled keys, and
  aged (age -> the completed ids past it, or false when one is a child job) that this fills.
]]
-- @include "numText"
local function completeJob(b, q, jobId, token, keep, age, now)
  local rcall = redis.call
  local prefix = b.prefix
  local jobKey = prefix .. jobId
  local attributes = rcall("HMGET", jobKey, "timestamp", "parentKey", "parent", "deid", "atm")
  -- pending dependencies or failed children: a non-empty set or zset (empty ones do not exist)
  if not attributes[1] or attributes[2] or attributes[3] or attributes[4]
    or rcall("EXISTS", jobKey .. ":dependencies", jobKey .. ":unsuccessful") ~= 0 then
    return -7
  end
  local lockKey = jobKey .. ":lock"
  if rcall("GET", lockKey) ~= token then
    return -7
  end
  -- completed jobs past the age limit (read once per age in a script); a child job among them
  -- (its parent's bookkeeping) is left, with this whole job, to bullmq's moveToFinished
  local aged = nil
  if keep ~= 0 and age ~= "" then
    aged = b.aged[age]
    if aged == nil then
      aged = rcall("ZREVRANGEBYSCORE", b.completed, numText(now - tonumber(age) * 1000), "-inf", "LIMIT", "0", "1000")
      for _, id in ipairs(aged) do
        local old = rcall("HMGET", prefix .. id, "parentKey", "parent")
        if old[1] or old[2] then
          aged = false
          break
        end
      end
      b.aged[age] = aged
    end
    if aged == false then
      return -7
    end
  end
  if rcall("LREM", b.active, "-1", jobId) == 0 then
    return -7 -- not active (the first change this makes)
  end
  rcall("DEL", lockKey)
  rcall("SREM", b.stalled, jobId)
  if keep ~= 0 then
    rcall("ZADD", b.completed, numText(now), jobId)
    rcall("HSET", jobKey, "atm", numText((tonumber(attributes[5]) or 0) + 1), "returnvalue", "null", "finishedOn",
      numText(now))
    if aged then
      for _, id in ipairs(aged) do
        local key = prefix .. id
        rcall("DEL", key, key .. ":logs", key .. ":dependencies", key .. ":processed", key .. ":failed",
          key .. ":unsuccessful")
        rcall("ZREM", b.completed, id)
      end
      b.aged[age] = {} -- removed: the next job of this script with that age finds none
    end
    if keep > 0 then
      local extra = rcall("ZREVRANGE", b.completed, numText(keep), "-1")
      for _, id in ipairs(extra) do
        local key = prefix .. id
        rcall("DEL", key, key .. ":logs", key .. ":dependencies", key .. ":processed", key .. ":failed",
          key .. ":unsuccessful")
      end
      rcall("ZREMRANGEBYRANK", b.completed, "0", numText(-(keep + 1)))
    end
  else
    rcall("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies", jobKey .. ":processed",
      jobKey .. ":failed", jobKey .. ":unsuccessful")
  end
  rcall("XADD", q.events, "*", "event", "completed", "jobId", jobId, "returnvalue", "null", "prev", "active")
  return 1
end
