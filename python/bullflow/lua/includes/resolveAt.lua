--[[
  Predecessor p resolved at node t (an 'all' join), having arrived when arrived is true: p joins
  t's arrival set "a:<t>" (when it arrived) and its resolution set "r:<t>", as addToSet writes
  them. f: t's joinFields values, as read before. Returns whether t still waits on a
  predecessor (isWaitingOn), the size of its arrival set, and the run hash writes (field, value,
  ...) that record the two sets, for the caller to make: none when t becomes ready, since
  makeReady then forgets both sets.
]]
-- @include "numText"
-- @include "textNum"
local function resolveAt(run, t, p, arrived, f)
  local n, pn = numText(t), numText(p)
  local a, r = "a:" .. n, "r:" .. n
  local member = "," .. pn .. ","
  local sizes = { textNum(f[2]) or 0, textNum(f[4]) or 0 }
  local writes = {}
  for k, name in ipairs({ a, r }) do
    local text = f[2 * k - 1] or ","
    if (k == 2 or arrived) and not string.find(text, member, 1, true) then
      sizes[k] = sizes[k] + 1
      writes[#writes + 1] = name
      writes[#writes + 1] = text .. pn .. ","
      writes[#writes + 1] = name .. "#"
      writes[#writes + 1] = numText(sizes[k])
    end
  end
  return sizes[2] < nodeRecord(run, t).npreds + (textNum(f[5]) or 0), sizes[1], writes
end
