--[[
  The number in text s (nil when s is nil, false or not a number). tonumber() parses with C's
  strtod, which is slow, and most texts the hot paths parse are small integers (node statuses,
  counts, flags, the indices of small graphs): those are looked up in a table the script builds
  once; any other text is parsed (not remembered: a cache that grows costs more to fill than it
  saves when a call parses each text once or twice).
]]
local smallNums = {
  ["-1"] = -1, ["0"] = 0, ["1"] = 1, ["2"] = 2, ["3"] = 3, ["4"] = 4, ["5"] = 5, ["6"] = 6, ["7"] = 7,
  ["8"] = 8, ["9"] = 9, ["10"] = 10, ["11"] = 11, ["12"] = 12, ["13"] = 13, ["14"] = 14, ["15"] = 15,
}
local function textNum(s)
  return smallNums[s] or tonumber(s) -- (a nil or false key reads nil; tonumber gives nil for them)
end
