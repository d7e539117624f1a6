-- Calls LuaSocket's low-level mime functions directly, case by case.
--
-- stdin: cases of string.pack("s4Bs4Bs4Bs4"): the function name, then three
-- arguments, each a presence flag and a string. For wrp/qpwrp/eol/dot the
-- first argument (and wrp/qpwrp's third) is a number written in decimal.
-- stdout: per case string.pack("Bs4Bs4"): each of the two results, a flag
-- (0 nil, 1 string, 2 number) and its text.
local mime = require("mime")

local numeric_first = {wrp = true, qpwrp = true, eol = true, dot = true}

local function result(v)
  if v == nil then return 0, "" end
  if type(v) == "number" then return 2, string.format("%d", v) end
  return 1, v
end

local input = io.read("a")
local pos = 1
local out = {}
while pos <= #input do
  local name, h1, a1, h2, a2, h3, a3
  name, h1, a1, h2, a2, h3, a3, pos = string.unpack("s4Bs4Bs4Bs4", input, pos)
  local args = {h1 == 1 and a1 or nil, h2 == 1 and a2 or nil, h3 == 1 and a3 or nil}
  if numeric_first[name] and args[1] then args[1] = math.tointeger(tonumber(args[1])) end
  if (name == "wrp" or name == "qpwrp") and args[3] then args[3] = math.tointeger(tonumber(args[3])) end
  local r1, r2 = mime[name](args[1], args[2], args[3])
  local f1, t1 = result(r1)
  local f2, t2 = result(r2)
  out[#out + 1] = string.pack("Bs4Bs4", f1, t1, f2, t2)
end
io.write(table.concat(out))
