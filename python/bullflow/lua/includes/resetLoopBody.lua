--[[
  A loop controller continues: the nodes of its body that finished (or never ran) become pending
  again, forgetting their arrivals and the predecessors an earlier iteration added to them.
]]
local function resetLoopBody(run, body)
  for _, b in ipairs(body) do
    local s = nodeStatus(run, b)
    if s == 3 or s == 4 or s == 0 then
      setNodeStatus(run, b, 0)
      clearNodeSets(run, b, true)
    end
  end
end
