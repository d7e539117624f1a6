// Baseline bulk sender: nodemailer's pool (maxConnections N, maxMessages Infinity),
// every message handed over at once with Promise.all so the pool's connections are all used.
// usage: node bulk_nodemailer.js HOST PORT KIND COUNT CONNECTIONS [ATTACHMENT]
//        (NODE_PATH must reach nodemailer; see bulk_common.py for KIND and ATTACHMENT)
const nodemailer = require("nodemailer");
const path = require("path");
const [host, port, kind, count, connections, fileArg] = process.argv.slice(2);
const file = fileArg || process.env.SMTPSTREAM_BENCH_ATTACHMENT ||
  path.join(process.env.SMTPSTREAM_BENCH_DIR || "/tmp/smtpstream-bench", "attach-100k.bin");
if (!["attach100k", "small2k"].includes(kind) || !(Number(count) >= 0) || !(Number(connections) >= 1)) {
  console.error("usage: node bulk_nodemailer.js HOST PORT {attach100k|small2k} COUNT CONNECTIONS [ATTACHMENT]");
  process.exit(2);
}

function smallBody(size = 2048) {  // the same text as bulk_common.small_body()
  const lines = [];
  let total = 0;
  for (let n = 0; total < size; n++) {
    const line = `Line ${String(n).padStart(2, "0")} of the daily digest: nothing to report, all systems normal.\n`;
    lines.push(line);
    total += line.length;
  }
  return lines.join("");
}
const SMALL_BODY = smallBody();

function mail(i) {
  const base = { from: "Sender <sender@example.com>", to: `user${i}@example.com` };
  if (kind === "attach100k") {
    return { ...base, subject: `Report ${i}`, text: "Please find the report attached.\n",
             attachments: [{ filename: path.basename(file), path: file }] };
  }
  return { ...base, subject: `Digest ${i}`, text: SMALL_BODY };
}

async function main() {
  const transport = nodemailer.createTransport({
    host, port: Number(port), secure: false, ignoreTLS: true, name: "client.example.com",
    pool: true, maxConnections: Number(connections), maxMessages: Infinity,
  });
  const sends = [];
  for (let i = 0; i < Number(count); i++) sends.push(transport.sendMail(mail(i)));
  const infos = await Promise.all(sends);
  transport.close();
  const delivered = infos.filter((info) => info.accepted.length === 1 && info.rejected.length === 0).length;
  if (delivered !== Number(count)) {
    console.error(`delivered ${delivered} of ${count} messages`);
    process.exit(1);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
