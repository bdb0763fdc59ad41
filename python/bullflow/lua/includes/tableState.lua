--[[
  Makes a new run's state hash (stateKey, which already holds its first fields) a hash table when
  the graph has at least 43 static nodes (nodes): a run writes about three state fields per node
  (its output, the <id> alias, a successor's input), so such a state outgrows a listpack (128
  fields, redis' hash-max-listpack-entries default) anyway, and until it does, every write and
  read of it scans the whole listpack (a 200-node chain's first 40 nodes: 7% of redis-server's
  instructions). A field longer than a listpack value (64 bytes) converts the hash, and redis
  never converts it back; the field is deleted at once. HSETNX leaves a context key of that name
  alone (then the hash stays as it is). hashTableFiller is that value; startRun's run hash uses it
  too (its "hx" field).
]]
-- (65 characters; a literal: the library defines this before the first call binds `string`)
local hashTableFiller = "-----------------------------------------------------------------"
local function tableState(stateKey, nodes)
  if nodes >= 43 and redis.call("HSETNX", stateKey, "\0bullflow:table", hashTableFiller) == 1 then
    redis.call("HDEL", stateKey, "\0bullflow:table")
  end
end
