--[[
  Whether s is one JSON text (RFC 8259: objects, arrays, strings without raw control characters
  and with valid escapes, numbers without leading zeros or a bare dot, true/false/null), nested
  at most 512 deep. Stricter than cjson.decode, which accepts 0x1F, nan, inf, +1, 01 and 1.
]]
local function isJsonText(s)
  local pos = 1
  local len = #s
  local sub, find = string.sub, string.find
  local function skip()
    pos = find(s, "[^ \t\n\r]", pos) or len + 1
  end
  local function str()
    pos = pos + 1
    while true do
      local i = find(s, '["\\%c]', pos)
      if not i then
        return false
      end
      local c = sub(s, i, i)
      if c == '"' then
        pos = i + 1
        return true
      elseif c == "\\" then
        local e = sub(s, i + 1, i + 1)
        if e == "u" then
          if not find(s, "^%x%x%x%x", i + 2) then
            return false
          end
          pos = i + 6
        elseif e ~= "" and find('"\\/bfnrt', e, 1, true) then
          pos = i + 2
        else
          return false
        end
      else
        return false
      end
    end
  end
  local function number()
    local _, e = find(s, "^-?%d+", pos)
    if not e then
      return false
    end
    local digits = sub(s, pos, e)
    if find(digits, "^-?0%d") then
      return false
    end
    pos = e + 1
    if sub(s, pos, pos) == "." then
      _, e = find(s, "^%d+", pos + 1)
      if not e then
        return false
      end
      pos = e + 1
    end
    local x = sub(s, pos, pos)
    if x == "e" or x == "E" then
      _, e = find(s, "^[-+]?%d+", pos + 1)
      if not e then
        return false
      end
      pos = e + 1
    end
    return true
  end
  local value
  local function sequence(close, depth, keyed)
    pos = pos + 1
    skip()
    if sub(s, pos, pos) == close then
      pos = pos + 1
      return true
    end
    while true do
      if keyed then
        skip()
        if sub(s, pos, pos) ~= '"' or not str() then
          return false
        end
        skip()
        if sub(s, pos, pos) ~= ":" then
          return false
        end
        pos = pos + 1
      end
      if not value(depth + 1) then
        return false
      end
      skip()
      local c = sub(s, pos, pos)
      pos = pos + 1
      if c == close then
        return true
      elseif c ~= "," then
        return false
      end
    end
  end
  value = function(depth)
    if depth > 512 then
      return false
    end
    skip()
    local c = sub(s, pos, pos)
    if c == "{" then
      return sequence("}", depth, true)
    elseif c == "[" then
      return sequence("]", depth, false)
    elseif c == '"' then
      return str()
    elseif c == "t" or c == "f" or c == "n" then
      for _, word in ipairs({ "true", "false", "null" }) do
        if sub(s, pos, pos + #word - 1) == word then
          pos = pos + #word
          return true
        end
      end
      return false
    end
    return number()
  end
  if not value(1) then
    return false
  end
  skip()
  return pos > len
end
