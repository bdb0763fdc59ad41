--[[
  Appends one entry to an instance's log stream (P:wf:{id}:log): event name, server time, the
  step key it concerns ("" for the instance) and a detail text (JSON or ""). The stream keeps
  about the newest 10,000 entries.
]]
local function durableLog(logKey, now, event, step, detail)
  redis.call("XADD", logKey, "MAXLEN", "~", 10000, "*", "event", event, "ts", now, "step", step,
    "detail", detail)
end
