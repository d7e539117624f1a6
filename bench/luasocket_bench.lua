-- Streams a file through a LuaSocket mime filter chain into a counting sink.
-- usage: lua5.4 luasocket_bench.lua CHAIN FILE CHUNK
-- CHAIN: b64wrap | qptext | normstuff | unb64. Prints the output size.
local ltn12 = require("ltn12")
local mime = require("mime")

local chains = {
  b64wrap = function() return ltn12.filter.chain(mime.encode("base64"), mime.wrap("base64")) end,
  qptext = function()
    return ltn12.filter.chain(mime.normalize(), mime.encode("quoted-printable"), mime.wrap("quoted-printable"))
  end,
  normstuff = function() return ltn12.filter.chain(mime.normalize(), mime.stuff()) end,
  unb64 = function() return mime.decode("base64") end,
}

local name, path, chunk = arg[1], arg[2], tonumber(arg[3])
ltn12.BLOCKSIZE = chunk
local total = 0
local sink = function(c) if c then total = total + #c end return 1 end
local src = ltn12.source.chain(ltn12.source.file(io.open(path, "rb")), chains[name]())
assert(ltn12.pump.all(src, sink))
print(total)
