// Baseline sender: nodemailer, one pooled connection.
// usage: node nodemailer_send.js HOST PORT ATTACHMENT COUNT [--dkim=KEY.pem]   (NODE_PATH must reach nodemailer)
// With --dkim every message is signed (nodemailer's dkim option: rsa-sha256, relaxed/relaxed).
const nodemailer = require("nodemailer");
const path = require("path");
const fs = require("fs");
const [host, port, file, count, ...flags] = process.argv.slice(2);
const dkimFlag = flags.find((f) => f.startsWith("--dkim="));
const dkim = dkimFlag
  ? { domainName: "example.com", keySelector: "bench", privateKey: fs.readFileSync(dkimFlag.slice(7), "utf8") }
  : undefined;

async function main() {
  const transport = nodemailer.createTransport({
    host, port: Number(port), secure: false, ignoreTLS: true,
    pool: true, maxConnections: 1, maxMessages: Infinity, dkim,
  });
  for (let i = 0; i < Number(count); i++) {
    await transport.sendMail({
      from: "Sender <sender@example.com>",
      to: `user${i}@example.com`,
      subject: `Report ${i}`,
      text: "Please find the report attached.\n",
      attachments: [{ filename: path.basename(file), path: file }],
    });
  }
  transport.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
