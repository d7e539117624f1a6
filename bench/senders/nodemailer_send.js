// Baseline sender: nodemailer, one pooled connection.
// usage: node nodemailer_send.js HOST PORT ATTACHMENT COUNT   (NODE_PATH must reach nodemailer)
const nodemailer = require("nodemailer");
const path = require("path");
const [host, port, file, count] = process.argv.slice(2);

async function main() {
  const transport = nodemailer.createTransport({
    host, port: Number(port), secure: false, ignoreTLS: true,
    pool: true, maxConnections: 1, maxMessages: Infinity,
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
