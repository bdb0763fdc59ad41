--[[
  The scheduling record of node i: static nodes come from the graph hash (one field per index,
  CompiledGraph.lua_encoding()), nodes added while the run runs (batch workers) from the run hash
  field "d:<i>". Fields: id, any (join 'any'), lc (loop controller), fb (fallback index or -1),
  ls (loop start or -1), npreds, preds (set), back (set), edges ({edge, source, target, action,
  conditional}), body (loop body indices), opts (job options JSON fragment). Records are read
  only (but for what commitNode derives from one and keeps in it: reads); with run.graphs (graph
  key -> records) the static ones are shared by a script's calls.
]]
local function nodeRecord(run, i)
  local r = run.records[i]
  if r then
    return r
  end
  local function toSet(list)
    local s = {}
    for _, v in ipairs(list) do
      s[v] = true
    end
    return s
  end
  if i < run.nstatic then
    -- a graph's records never change: the calls of one script share them (run.graphs)
    local shared = run.graphs and run.graphs[run.graphKey]
    r = shared and shared[i]
    if not r then
      local f = redis.call("HMGET", run.graphKey, tostring(i), "id:" .. i, "o:" .. i)
      local v = cjson.decode(f[1])
      r = {
        id = f[2], any = v[1] == 1, lc = v[2] == 1, fb = v[3], ls = v[4], npreds = #v[5],
        preds = toSet(v[5]), back = toSet(v[6]), edges = v[7], body = v[8], opts = f[3] or "",
      }
      if run.graphs then
        shared = shared or {}
        shared[i] = r
        run.graphs[run.graphKey] = shared
      end
    end
  else
    local v = cjson.decode(redis.call("HGET", run.runKey, "d:" .. i))
    local edges = {}
    for k, t in ipairs(v.targets) do
      edges[k] = { -1, i, t, cjson.null, 0 }
    end
    r = {
      id = v.id, any = false, lc = false, fb = -1, ls = -1, npreds = #v.preds, preds = toSet(v.preds),
      back = {}, edges = edges, body = {}, opts = "",
    }
  end
  run.records[i] = r
  return r
end
