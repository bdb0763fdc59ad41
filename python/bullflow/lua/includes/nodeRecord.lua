--[[
  The scheduling record of node i: static nodes come from the graph hash (one field per index,
  CompiledGraph.lua_encoding()), nodes added while the run runs (batch workers) from the run hash
  field "d:<i>". Fields: id, any (join 'any'), lc (loop controller), fb (fallback index or -1),
  ls (loop start or -1), npreds, preds (set), back (set), edges ({edge, source, target, action,
  conditional}), body (loop body indices), opts (job options JSON fragment). Records are read
  only (but for what commitNode derives from one and keeps in it: reads); the static ones are
  shared by the calls (graphRecord).
]]
-- @include "graphRecord"
-- @include "indexSet"
local function nodeRecord(run, i)
  local r = run.records[i]
  if r then
    return r
  end
  if i < run.nstatic then
    r = graphRecord(run.graphKey, i)
  else
    local v = cjson.decode(redis.call("HGET", run.runKey, "d:" .. i))
    local edges = {}
    for k, t in ipairs(v.targets) do
      edges[k] = { -1, i, t, cjson.null, 0 }
    end
    r = {
      id = v.id, any = false, lc = false, fb = -1, ls = -1, npreds = #v.preds, preds = indexSet(v.preds),
      back = {}, edges = edges, body = {}, opts = "",
    }
  end
  run.records[i] = r
  return r
end
