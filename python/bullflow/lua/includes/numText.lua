--[[
  The decimal text of number n. Lua turns a number into text (a concatenation, or a number
  argument of redis.call) with C's "%.14g"/"%.17g" formatting, which is slow for the millisecond
  clock and costly when repeated for every field name with a node index in it: the hot paths
  build those with numText instead. The texts of the integers -1 to 4095 (node indices, counts,
  statuses) are remembered, for every call of the library's functions (bounded: clocks and ids
  are not), and so is the last other number's (a call's clock, used over and over).
]]
local numTexts = {}
local lastNum, lastText = nil, nil
local function numText(n)
  local s = numTexts[n]
  if s then
    return s
  end
  if n == lastNum then
    return lastText
  end
  if n == math.floor(n) and n > -1e15 and n < 1e15 then
    s = string.format("%d", n)
    if n >= -1 and n < 4096 then
      numTexts[n] = s
      return s
    end
  else
    s = tostring(n)
  end
  lastNum, lastText = n, s
  return s
end
