--[[
  The JSON text of workflow:status:<runId>: {status, payload: {context, serializedContext,
  status, errors}, reason?}. The context is the state hash as one JSON object (its values are
  JSON text already; a field that is not valid JSON appears as a JSON string of its text).
]]
local function buildStatus(run, status, reason)
  local flat = redis.call("HGETALL", run.stateKey)
  local parts = {}
  for k = 1, #flat, 2 do
    local value = flat[k + 1]
    if value == "" then
      value = "null"
    elseif not (string.find(value, '^"[^"\\%c]*"$') or string.find(value, "^-?[1-9]%d*$") or value == "0"
      or value == "null" or value == "true" or value == "false") and not isJsonText(value) then
      -- (the common values -- a string without escapes, an integer, a literal -- are JSON at sight)
      value = cjson.encode(value) -- a corrupt field is reported as its text, never breaks the JSON
    end
    parts[#parts + 1] = cjson.encode(flat[k]) .. ":" .. value
  end
  local context = "{" .. table.concat(parts, ",") .. "}"
  local errors = run.errText
  if errors == nil then
    errors = redis.call("HGET", run.runKey, "err")
  end
  errors = errors or "[]"
  local text = '{"status":' .. cjson.encode(status) .. ',"payload":{"context":' .. context ..
    ',"serializedContext":' .. cjson.encode(context) .. ',"status":' .. cjson.encode(status) ..
    ',"errors":' .. errors .. "}"
  if reason then
    text = text .. ',"reason":' .. cjson.encode(reason)
  end
  return text .. "}"
end
