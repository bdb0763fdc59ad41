--[[
  Ends the run hash's hash-table phase. startRun writes the filler field "hx" (a value longer
  than redis' hash-max-listpack-value, 64 bytes by default), so the run hash is a hash table
  while the run runs: every commit reads per-node fields that are mostly absent, and an absent
  field costs a hash lookup there instead of a scan of the whole listpack. When the run stops
  running (publishStatus) this removes the filler and, when the hash is small enough (at most
  128 fields, hash-max-listpack-entries' default), rewrites it with DUMP and RESTORE, which
  stores it as a compact listpack again (redis never converts a hash back by itself), with a
  TTL of ttl seconds (0: none). A server that refuses DUMP or RESTORE (an ACL without
  @dangerous, a managed service) keeps the hash a hash table. Returns true when it rewrote the
  hash (and so set its TTL).
]]
-- @include "numText"
local function compactRun(runKey, ttl)
  if redis.call("HDEL", runKey, "hx") == 0 or redis.call("HLEN", runKey) > 128 then
    return false
  end
  local payload = redis.pcall("DUMP", runKey)
  if type(payload) ~= "string" then
    return false
  end
  local restored = redis.pcall("RESTORE", runKey, numText(ttl * 1000), payload, "REPLACE")
  return type(restored) == "table" and restored.ok ~= nil
end
