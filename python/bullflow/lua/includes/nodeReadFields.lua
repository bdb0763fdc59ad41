--[[
  The run hash fields a worker reads for node index text n before it runs the node, in the order
  of the node fields of takeJob's reply: s, it, t, ff, rs and d (as multiple values, to end an
  HMGET's arguments).
]]
local function nodeReadFields(n)
  return "s:" .. n, "it:" .. n, "t:" .. n, "ff:" .. n, "rs:" .. n, "d:" .. n
end
