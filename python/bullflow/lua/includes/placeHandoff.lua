--[[
  Places the job enqueueNode handed to a worker slot (h: q.handoff with its jobId set). When the
  slot's own job was completed (took true) the job becomes the slot's as moveToActive would make
  it: pushed on the active list, locked by token for lockMs, the "active" event (the caller
  reads what its node needs once every commit of the script is done). Otherwise (the slot's job
  was left to bullmq) the job is queued as enqueueNode would have queued it: waiting, with the
  marker set (the queue is open: enqueueNode hands off only then; q.marked: set once per script).
]]
local function placeHandoff(q, h, took, token, lockMs)
  local rcall = redis.call
  local jobId = h.jobId
  if took then
    rcall("LPUSH", q.active, jobId)
    rcall("SET", q.prefix .. jobId .. ":lock", token, "PX", lockMs)
    rcall("XADD", q.events, "*", "event", "active", "jobId", jobId, "prev", "waiting")
  else
    rcall("HDEL", q.prefix .. jobId, "processedOn", "ats")
    rcall("LPUSH", q.wait, jobId)
    if not q.marked then
      rcall("ZADD", q.marker, "0", "0")
      q.marked = true
    end
    rcall("XADD", q.events, "MAXLEN", "~", q.maxEvents, "*", "event", "waiting", "jobId", jobId)
  end
end
