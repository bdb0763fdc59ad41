--[[
  Resolves predecessor p at target t ({t, p, arrived}) for each work item, in order: an 'any'
  join or loop controller is ready on the first arrival; an 'all' join is ready once every
  predecessor resolved and at least one arrived, and skipped when none arrived; a skipped node
  resolves its successors (and its fallback) as skipped in turn. Back edges are never waited on.
  The same rule as RunState._propagate (bullflow._pure.graph) and the Rust core.
  run.joins (optional): joinFields values the caller read along, per target; they hold until
  the first item of their target changes it, so that item takes them out.
]]
-- @include "numText"
-- @include "joinFields"
local function propagate(run, items, w)
  local head = 1
  local joins = run.joins or {}
  while head <= #items do
    local item = items[head]
    head = head + 1
    local t, p, arrived = item[1], item[2], item[3]
    local rec = nodeRecord(run, t)
    local st = nodeStatus(run, t)
    local f = joins[t]
    joins[t] = nil
    -- one static predecessor, none resolved yet and none added while running (batch workers):
    -- this arrival is the only one, and the node runs without the bookkeeping of its sets
    local direct = false
    if st == 0 and arrived and rec.npreds == 1 and not rec.back[p] and not rec.lc and not rec.any then
      f = f or redis.call("HMGET", run.runKey, joinFields(numText(t)))
      if not f[4] and not f[5] then
        makeReady(run, t, w, f[6], f[7], not f[2])
        direct = true
      end
    end
    if direct then
      -- done above
    elseif st ~= 0 then
      if arrived and st == 3 and rec.lc then
        makeReady(run, t, w)
      end
    elseif rec.back[p] then
      if arrived then
        addToSet(run, "a:" .. numText(t), p)
        if rec.lc or rec.any or not isWaitingOn(run, t) then
          makeReady(run, t, w)
        end
      end
    elseif arrived and (rec.lc or rec.any) then
      makeReady(run, t, w)
    else
      f = f or redis.call("HMGET", run.runKey, joinFields(numText(t)))
      local waiting, arrivals, writes = resolveAt(run, t, p, arrived, f)
      if not waiting and arrivals > 0 and w <= run.maxWaves then
        -- ready: makeReady forgets both sets, so they are not written first
        makeReady(run, t, w, f[6], f[7], not f[2] and not f[4])
      else
        if #writes > 0 then
          redis.call("HSET", run.runKey, unpack(writes))
        end
        if not waiting then
          if arrivals > 0 then
            makeReady(run, t, w) -- past the wave limit: names t in run.loopError
          else
            setNodeStatus(run, t, 4)
            table.insert(run.skipped, t)
            local seen = {}
            for _, e in ipairs(rec.edges) do
              if e[2] == t and not seen[e[3]] then
                seen[e[3]] = true
                table.insert(items, { e[3], t, false })
              end
            end
            if rec.fb >= 0 then
              table.insert(items, { rec.fb, t, false })
            end
          end
        end
      end
    end
  end
end
