--[[
  The decimal text of number n, remembered for the script. Lua turns a number into text (a
  concatenation, or a number argument of redis.call) with C's "%.14g"/"%.17g" formatting, which
  is slow for the millisecond clock and costly when repeated for every field name with a node
  index in it: the hot paths build those with numText instead.
]]
local numTexts = {}
local function numText(n)
  local s = numTexts[n]
  if not s then
    if n == math.floor(n) and n > -1e15 and n < 1e15 then
      s = string.format("%d", n)
    else
      s = tostring(n)
    end
    numTexts[n] = s
  end
  return s
end
