--[[
  The set (value -> true) of the values of list (a node record's predecessors, back edges).
]]
local function indexSet(list)
  local set = {}
  for _, v in ipairs(list) do
    set[v] = true
  end
  return set
end
