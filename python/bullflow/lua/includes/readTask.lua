--[[
  The execution facts a commit carries at args[pos], args[pos + 1] and args[pos + 2] (values past
  index last, when given, are not the commit's): the attempt number, when the execution started
  (ms) and its error text; missing values are 0, 0 and "".
]]
local function readTask(pos, args, last)
  last = last or #args
  local attempt, started, err = nil, nil, nil
  if pos <= last then
    attempt = args[pos]
  end
  if pos + 1 <= last then
    started = args[pos + 1]
  end
  if pos + 2 <= last then
    err = args[pos + 2]
  end
  return { attempt = tonumber(attempt) or 0, started = tonumber(started) or 0, err = err or "" }
end
