--[[
  Reads, for the jobs that completeJob is about to complete in this script (jobIds, their ids),
  the values of their locks (into b.locks: lock key -> value, false when there is none) with one
  MGET, and whether any of them has dependencies or failed children with one EXISTS (b.noDeps
  true when none has; completeJob then checks no job on its own). Also sets up b.done for
  flushCompletions.
]]
local function readCompletions(b, jobIds)
  local rcall = redis.call
  local lockKeys, depKeys = {}, {}
  for k, jobId in ipairs(jobIds) do
    local jobKey = b.prefix .. jobId
    lockKeys[k] = jobKey .. ":lock"
    depKeys[2 * k - 1] = jobKey .. ":dependencies"
    depKeys[2 * k] = jobKey .. ":unsuccessful"
  end
  local locks, deps = {}, 0
  -- (in slices: unpack() of a very long list overflows Lua's C stack)
  for first = 1, #lockKeys, 1000 do
    local last = math.min(first + 999, #lockKeys)
    local values = rcall("MGET", unpack(lockKeys, first, last))
    for k = first, last do
      locks[lockKeys[k]] = values[k - first + 1]
    end
    deps = deps + rcall("EXISTS", unpack(depKeys, 2 * first - 1, 2 * last))
  end
  b.locks = locks
  b.noDeps = deps == 0
  b.done = { locks = {}, ids = {}, completed = {} }
end
