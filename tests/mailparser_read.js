// Reads messages with npm's mailparser (a parser that is not Python's), one per line.
//
// stdin: lines, each a message in base64. stdout: one JSON line per message:
// {"to": [[name, address], ...], "subject": "..."}.
// Found through MAILPARSER_PATH (its node_modules), as bench/ finds nodemailer.
const path = require("path");
const readline = require("readline");
const modules = process.env.MAILPARSER_PATH || "/tmp/mailparser/node_modules";
const { simpleParser } = require(path.join(modules, "mailparser"));

const lines = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = false;

async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const raw = Buffer.from(queue.shift(), "base64");
    const parsed = await simpleParser(raw);
    const to = parsed.to ? (Array.isArray(parsed.to) ? parsed.to : [parsed.to]).flatMap((t) => t.value) : [];
    process.stdout.write(JSON.stringify({
      to: to.map((a) => [a.name, a.address]),
      subject: parsed.subject === undefined ? null : parsed.subject,
    }) + "\n");
  }
  busy = false;
}

lines.on("line", (line) => { queue.push(line); drain(); });
