--[[
  Node i completed and took the edges in taken (a set of edge ids; nil = every outgoing edge):
  mark it completed and resolve its successors (RunState.complete). A loop controller that
  continues resets its body first; a fallback node carries the edges of the node it stands in
  for. known: the node's {"w:<i>", "ff:<i>"} fields when the caller read them.
]]
-- @include "numText"
-- @include "textNum"
local function completeNodeState(run, i, taken, known)
  local rec = nodeRecord(run, i)
  if run.statuses[i] ~= 3 then
    setNodeStatus(run, i, 3)
  end
  local f = known or redis.call("HMGET", run.runKey, "w:" .. numText(i), "ff:" .. numText(i))
  local w = (textNum(f[1]) or 0) + 1
  local original = textNum(f[2]) or -1
  if original >= 0 then
    redis.call("HDEL", run.runKey, "ff:" .. numText(i))
  end
  -- edges by their (source, target) pair, as the number source * 2^26 + target (indices are
  -- far below 2^26; a number key saves building a string per edge)
  local takenPairs = {}
  for _, e in ipairs(rec.edges) do
    if taken == nil or taken[e[1]] then
      takenPairs[e[2] * 67108864 + e[3]] = true
    end
  end
  local continuing = false
  if rec.lc and rec.ls >= 0 then
    for _, e in ipairs(rec.edges) do
      if e[3] == rec.ls and takenPairs[e[2] * 67108864 + e[3]] then
        continuing = true
      end
    end
    if continuing then
      resetLoopBody(run, rec.body)
    end
  end
  local items = {}
  local seen = {}
  for _, e in ipairs(rec.edges) do
    local s, t = e[2], e[3]
    local key = s * 67108864 + t
    if (s == i or s == original) and not seen[key] then
      seen[key] = true
      local isTaken = takenPairs[key] == true
      if isTaken or not continuing then
        items[#items + 1] = { t, s, isTaken }
      end
    end
  end
  if rec.fb >= 0 then
    items[#items + 1] = { rec.fb, i, false }
  end
  propagate(run, items, w)
end
