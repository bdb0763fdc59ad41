--[[
  The table the coordination functions share for a run (see loadRun), built from its run hash
  values f in loadRun's order (bp, n, nd, st, mw, ttl, q, ch, jo, g, then the extra fields,
  which go to run.extra); now is the script's clock (ms).
]]
-- @include "numText"
-- @include "textNum"
local function newRun(f, stateKey, runKey, graphKey, statusKey, runId, now)
  return {
    id = runId, stateKey = stateKey, runKey = runKey, graphKey = graphKey, statusKey = statusKey,
    blueprintId = f[1], nstatic = textNum(f[2]), ndynamic = textNum(f[3]), status = f[4],
    maxWaves = textNum(f[5]), ttl = textNum(f[6]), queue = f[7], channel = f[8],
    jobOpts = (f[9] and f[9] ~= "") and ("," .. f[9]) or "", graph = f[10],
    now = now, nowText = numText(now),
    records = {}, statuses = {}, iterations = {}, ready = {}, skipped = {}, loopError = nil,
    extra = { unpack(f, 11) },
  }
end
