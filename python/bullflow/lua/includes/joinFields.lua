--[[
  The run hash fields that decide how node index text n is reached by a predecessor, in the
  order of a joinFields read: its arrival set and size ("a:<n>", "a:<n>#"), its resolution set
  and size ("r:<n>", "r:<n>#"), the count of predecessors added while the run runs ("x:<n>#"),
  its wave ("w:<n>") and its iteration ("it:<n>") (as multiple values, to end an HMGET's
  arguments). propagate reads them per target, or takes them from run.joins where the commit
  read them along with its run (commitNode).
]]
local function joinFields(n)
  return "a:" .. n, "a:" .. n .. "#", "r:" .. n, "r:" .. n .. "#", "x:" .. n .. "#", "w:" .. n, "it:" .. n
end
