--[[
  Appends a block of a flat reply to out, whose last index is n, and returns the new last index:
  0 when values is false, else 1 and values[1..count] (a nil as false, which a reply keeps).
]]
local function appendFields(out, n, values, count)
  if not values then
    out[n + 1] = 0
    return n + 1
  end
  out[n + 1] = 1
  for k = 1, count do
    out[n + 1 + k] = values[k] or false
  end
  return n + 1 + count
end
