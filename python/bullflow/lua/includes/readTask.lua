--[[
  The execution facts a commit carries at ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]: the attempt
  number, when the execution started (ms) and its error text; missing values are 0, 0 and "".
]]
local function readTask(pos)
  return { attempt = tonumber(ARGV[pos]) or 0, started = tonumber(ARGV[pos + 1]) or 0,
    err = ARGV[pos + 2] or "" }
end
