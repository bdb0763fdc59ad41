--[[
  The scheduling record of static node i of the graph hash graphKey (one field per index,
  CompiledGraph.lua_encoding()), or false when the graph has no node i (a node added while a run
  runs has an index past the graph's). Fields: see nodeRecord. A graph hash never changes (its
  key is the hash of its content), so the records read are remembered in graphRecords: for every
  call of the library's functions (as scripts, for the call), at most 4,096 of them (then they
  are read anew). "No node i" is not remembered: a graph hash missing now may be stored again.
]]
-- @include "indexSet"
local graphRecords, graphRecordCount = {}, 0
local function graphRecord(graphKey, i)
  local shared = graphRecords[graphKey]
  if shared then
    local r = shared[i]
    if r then
      return r
    end
  end
  local f = redis.call("HMGET", graphKey, tostring(i), "id:" .. i, "o:" .. i)
  if not f[1] then
    return false
  end
  local v = cjson.decode(f[1])
  local r = {
    id = f[2], any = v[1] == 1, lc = v[2] == 1, fb = v[3], ls = v[4], npreds = #v[5],
    preds = indexSet(v[5]), back = indexSet(v[6]), edges = v[7], body = v[8], opts = f[3] or "",
  }
  if graphRecordCount >= 4096 then
    graphRecords, graphRecordCount, shared = {}, 0, nil
  end
  if not shared then
    shared = {}
    graphRecords[graphKey] = shared
  end
  shared[i] = r
  graphRecordCount = graphRecordCount + 1
  return r
end
