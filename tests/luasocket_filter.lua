-- Pipes test cases through the real LuaSocket mime filters (lua5.4 + lua-socket).
--
-- stdin: a sequence of cases, each three string.pack("s4") strings:
--   a chain spec such as "normalize+qp+qpwrap" (stages joined by "+"),
--   the chunk lengths as comma-separated decimals (their sum is #data),
--   the data.
-- stdout: for each case, string.pack("s4", output) where output is what
-- ltn12.source.chain(source.table(chunks), filter.chain(stages)) produced.
local ltn12 = require("ltn12")
local mime = require("mime")

local function stage(spec)
  local name, arg = spec:match("^([%w%-]+):?(.*)$")
  local n = tonumber(arg)
  if name == "b64" then return mime.encode("base64")
  elseif name == "unb64" then return mime.decode("base64")
  elseif name == "qp" then return mime.encode("quoted-printable")
  elseif name == "qp-binary" then return mime.encode("quoted-printable", "binary")
  elseif name == "unqp" then return mime.decode("quoted-printable")
  elseif name == "wrap" then return mime.wrap("text", n)
  elseif name == "qpwrap" then return mime.wrap("quoted-printable")
  elseif name == "qpwrp" then return ltn12.filter.cycle(mime.qpwrp, n, n)
  elseif name == "normalize" then
    local marker = ({CRLF = "\r\n", LF = "\n", CR = "\r", NONE = ""})[arg]
    return mime.normalize(marker)
  elseif name == "stuff" then return mime.stuff()
  elseif name == "dot" then return ltn12.filter.cycle(mime.dot, 0)
  -- The eight low-level functions through cycle, as LuaSocket's mime.lua does
  -- (a missing argument is nil: the function's default).
  elseif name == "cycle-b64" then return ltn12.filter.cycle(mime.b64, "")
  elseif name == "cycle-unb64" then return ltn12.filter.cycle(mime.unb64, "")
  elseif name == "cycle-qp" then return ltn12.filter.cycle(mime.qp, "")
  elseif name == "cycle-qp-binary" then return ltn12.filter.cycle(mime.qp, "", "=0D=0A")
  elseif name == "cycle-unqp" then return ltn12.filter.cycle(mime.unqp, "")
  elseif name == "cycle-wrp" then return ltn12.filter.cycle(mime.wrp, n or 76, n)
  elseif name == "cycle-qpwrp" then return ltn12.filter.cycle(mime.qpwrp, n or 76, n)
  elseif name == "cycle-eol" then
    return ltn12.filter.cycle(mime.eol, 0, ({CRLF = "\r\n", LF = "\n", NONE = ""})[arg])
  elseif name == "cycle-dot" then return ltn12.filter.cycle(mime.dot, n or 2)
  end
  error("unknown stage " .. spec)
end

local input = io.read("a")
local pos = 1
local out = {}
while pos <= #input do
  local spec, lengths, data
  spec, lengths, data, pos = string.unpack("s4s4s4", input, pos)
  local stages = {}
  for s in spec:gmatch("[^+]+") do stages[#stages + 1] = stage(s) end
  local chunks, at = {}, 1
  for len in lengths:gmatch("%d+") do
    len = tonumber(len)
    chunks[#chunks + 1] = data:sub(at, at + len - 1)
    at = at + len
  end
  local filter = #stages == 1 and stages[1] or ltn12.filter.chain(table.unpack(stages))
  local sink, result = ltn12.sink.table()
  local ok, err = ltn12.pump.all(ltn12.source.chain(ltn12.source.table(chunks), filter), sink)
  if not ok and err then error(err) end
  out[#out + 1] = string.pack("s4", table.concat(result))
end
io.write(table.concat(out))
