--[[
  True for the statuses an instance never leaves except by restart.
]]
local function isTerminal(status)
  return status == "complete" or status == "errored" or status == "terminated"
end
