--[[
  Advances the queue's job id counter (bull:<queue>:id) by the jobs enqueueNode added in this
  script (q.added): bullmq's addJob scripts INCR it once per job, custom id or not, and a script
  that adds several jobs does so with one INCRBY at its end.
]]
-- @include "numText"
local function writeJobCounter(q)
  local added = q.added
  if added and added > 0 then
    redis.call("INCRBY", q.id, numText(added))
    q.added = 0
  end
end
