// Runs VS Code's YAML language server (the yaml-language-server package) headless over
// stdio, as the editor extension does, opens one YAML file and prints the diagnostics it
// publishes for it as JSON. The file names its schema in a `# yaml-language-server:
// $schema=...` modeline, as the README tells users to write.
// Usage: node yamlls-diagnostics.mjs FILE.yaml
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const server = require.resolve("yaml-language-server/bin/yaml-language-server");
const file = resolve(process.argv[2]);
const uri = pathToFileURL(file).href;
const child = spawn(process.execPath, [server, "--stdio"], { stdio: ["pipe", "pipe", "inherit"] });
const settings = { yaml: { validate: true, hover: true, completion: true, schemaStore: { enable: false } } };

let nextId = 1;
function send(message) {
  const body = JSON.stringify({ jsonrpc: "2.0", ...message });
  child.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

const timer = setTimeout(() => { console.error("no diagnostics within 60 s"); process.exit(2); }, 60_000);
let buffer = Buffer.alloc(0);
child.stdout.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (;;) {
    const end = buffer.indexOf("\r\n\r\n");
    if (end < 0) return;
    const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, end).toString())[1]);
    if (buffer.length < end + 4 + length) return;
    const message = JSON.parse(buffer.subarray(end + 4, end + 4 + length).toString());
    buffer = buffer.subarray(end + 4 + length);
    handle(message);
  }
});

function handle(message) {
  if (message.method === "workspace/configuration") {
    send({ id: message.id, result: message.params.items.map((item) => settings[item.section] ?? settings.yaml) });
  } else if (message.id !== undefined && message.method) {
    send({ id: message.id, result: null });
  } else if (message.id === 1) {
    send({ method: "initialized", params: {} });
    send({ method: "workspace/didChangeConfiguration", params: { settings } });
    send({ method: "textDocument/didOpen", params: { textDocument: {
      uri, languageId: "yaml", version: 1, text: readFileSync(file, "utf8") } } });
  } else if (message.method === "textDocument/publishDiagnostics" && message.params.uri === uri) {
    clearTimeout(timer);
    process.stdout.write(JSON.stringify(message.params.diagnostics, null, 1) + "\n");
    child.kill();
    process.exit(0);
  }
}

send({ id: nextId++, method: "initialize", params: {
  processId: process.pid, rootUri: pathToFileURL(resolve(file, "..")).href,
  capabilities: { workspace: { configuration: true }, textDocument: { publishDiagnostics: {} } },
} });
