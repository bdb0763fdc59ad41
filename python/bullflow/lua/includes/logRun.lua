--[[
  Appends an entry to the run log, the stream bullflow:runlog:<runId> (fields type, node,
  msg; the entry id's milliseconds are its time), trimmed to about the newest 1,000 entries.
  The log expires with the run (publishStatus); the HTTP API and the dashboard read it.
]]
local function logRun(run, kind, nodeId, message)
  redis.call("XADD", "bullflow:runlog:" .. run.id, "MAXLEN", "~", "1000", "*", "type", kind,
    "node", nodeId or "", "msg", message or "")
end
