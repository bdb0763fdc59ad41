--[[
  The run hash fields a commit of node index text n reads along with its run, in the order of
  run.extra that commitNode relies on: its status, iteration, resume state, wave and the node it
  stands in for ("s:", "it:", "rs:", "w:", "ff:"; as multiple values, to start a list).
]]
local function commitReadFields(n)
  return "s:" .. n, "it:" .. n, "rs:" .. n, "w:" .. n, "ff:" .. n
end
