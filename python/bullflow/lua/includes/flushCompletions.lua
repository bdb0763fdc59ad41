--[[
  Writes what completeJob gathered in b.done for the jobs it completed: their locks deleted,
  their ids out of the stalled set, and their entries (score, id, ...) added to the completed
  set, each with one command (a few thousand arguments per call).
]]
-- @include "callInChunks"
local function flushCompletions(b)
  local done = b.done
  local locks = done.locks
  if #locks > 0 then
    for first = 1, #locks, 4000 do
      redis.call("DEL", unpack(locks, first, math.min(first + 3999, #locks)))
    end
    callInChunks("SREM", b.stalled, done.ids, 1, 1)
    done.locks, done.ids = {}, {}
  end
  if #done.completed > 0 then
    callInChunks("ZADD", b.completed, done.completed, 1, 2)
    done.completed = {}
  end
end
