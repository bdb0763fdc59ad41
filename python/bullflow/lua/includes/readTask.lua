--[[
  The execution facts a commit carries at args[pos], args[pos + 1] and args[pos + 2] (args is
  ARGV when nil): the attempt number, when the execution started (ms) and its error text;
  missing values are 0, 0 and "".
]]
local function readTask(pos, args)
  args = args or ARGV
  return { attempt = tonumber(args[pos]) or 0, started = tonumber(args[pos + 1]) or 0,
    err = args[pos + 2] or "" }
end
