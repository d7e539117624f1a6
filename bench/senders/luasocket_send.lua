-- Baseline sender: LuaSocket (smtp.message + an open session), one connection.
-- usage: lua5.4 luasocket_send.lua HOST PORT ATTACHMENT COUNT
local smtp = require("socket.smtp")
local socket = require("socket")
local ltn12 = require("ltn12")
local mime = require("mime")
local host, port, file, count = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4])

local s = assert(smtp.open(host, port))
s:greet("client.example.com")
for i = 1, count do
  local source = smtp.message{
    headers = { from = "Sender <sender@example.com>", to = "user" .. i .. "@example.com",
                subject = "Report " .. i },
    body = {
      [1] = { body = "Please find the report attached.\r\n" },
      [2] = {
        headers = { ["content-type"] = 'application/octet-stream; name="attach.bin"',
                    ["content-disposition"] = 'attachment; filename="attach.bin"',
                    ["content-transfer-encoding"] = "BASE64" },
        body = ltn12.source.chain(ltn12.source.file(io.open(file, "rb")),
                                  ltn12.filter.chain(mime.encode("base64"), mime.wrap())),
      },
    },
  }
  s:send{ from = "<sender@example.com>", rcpt = "<user" .. i .. "@example.com>", source = source }
end
s:quit()
s:close()
