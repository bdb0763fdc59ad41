--[[
  The number in text s (nil when s is nil, false or not a number), remembered for the script:
  tonumber() parses with C's strtod every time, which is slow, and the texts the hot paths parse
  repeat (node indices, counts, statuses, flags). Not for texts that rarely repeat (clock values,
  ids): the cache would only grow.
]]
local textNums = {}
local function textNum(s)
  if not s then
    return nil
  end
  local n = textNums[s]
  if n == nil then
    n = tonumber(s)
    if n == nil then
      return nil
    end
    textNums[s] = n
  end
  return n
end
