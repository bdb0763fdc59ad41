--[[
  The decoded "meta" field of a graph hash ({id, hash, nodes, edges, start}), from its text. The
  tables are read only and remembered by text for every call of the library's functions (as
  scripts, for the call), at most 64 of them (then they are decoded anew).
]]
local graphMetas, graphMetaCount = {}, 0
local function graphMeta(metaText)
  local meta = graphMetas[metaText]
  if not meta then
    meta = cjson.decode(metaText)
    if graphMetaCount >= 64 then
      graphMetas, graphMetaCount = {}, 0
    end
    graphMetas[metaText] = meta
    graphMetaCount = graphMetaCount + 1
  end
  return meta
end
