--[[
  The scheduling record of static node i of the graph hash graphKey (one field per index,
  CompiledGraph.lua_encoding()), or false when the graph has no node i (a node added while a run
  runs has an index past the graph's). Fields: see nodeRecord. With graphs (graph key -> index ->
  record or false) the answer is remembered there, for the calls of one script to share.
]]
local function graphRecord(graphKey, i, graphs)
  local shared = graphs and graphs[graphKey]
  if shared then
    local r = shared[i]
    if r ~= nil then
      return r
    end
  end
  local f = redis.call("HMGET", graphKey, tostring(i), "id:" .. i, "o:" .. i)
  local r = false
  if f[1] then
    local v = cjson.decode(f[1])
    local preds, back = {}, {}
    for _, p in ipairs(v[5]) do
      preds[p] = true
    end
    for _, p in ipairs(v[6]) do
      back[p] = true
    end
    r = {
      id = f[2], any = v[1] == 1, lc = v[2] == 1, fb = v[3], ls = v[4], npreds = #v[5],
      preds = preds, back = back, edges = v[7], body = v[8], opts = f[3] or "",
    }
  end
  if graphs then
    shared = shared or {}
    shared[i] = r
    graphs[graphKey] = shared
  end
  return r
end
