#!/usr/bin/env node
// `npm start`: the whole stack on this machine, with no account and no network.
// - the relay (STUN/TURN on UDP and TCP, loopback peers allowed) on 127.0.0.1:<relay-port>
// - the Worker (signaling + credentials) in local workerd on 127.0.0.1:<port>
// Both share one freshly generated secret, so /v1/ice-servers and the welcome frame hand out
// credentials the relay accepts. Ctrl-C (or SIGTERM) stops both.
//
// Options: --port N (Worker, default 8787), --relay-port N (default 3478).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { port: { type: "string", default: "8787" }, "relay-port": { type: "string", default: "3478" } },
});
const port = values.port;
const relayPort = values["relay-port"];
for (const [name, value] of [["--port", port], ["--relay-port", relayPort]]) {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    console.error(`npm start: ${name} must be a port number (1-65535), not ${JSON.stringify(value)}`);
    process.exit(2);
  }
}

const secret = randomBytes(32).toString("base64url");
const turnUrls = [`turn:127.0.0.1:${relayPort}?transport=udp`, `turn:127.0.0.1:${relayPort}?transport=tcp`].join(",");
const quiet = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" };

const children = [];
function start(name, command, args, env) {
  const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...quiet, ...env } });
  child.on("exit", (code, signal) => {
    if (!stopping) {
      console.error(`npm start: the ${name} stopped (${signal ?? `exit ${code}`}); stopping the rest`);
      stop(code ?? 1);
    }
  });
  children.push(child);
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  // Give both a moment to close their sockets, then make sure.
  setTimeout(() => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    process.exit(code);
  }, 5_000).unref();
  Promise.all(children.map((child) => (child.exitCode !== null ? null : new Promise((resolve) => child.once("exit", resolve))))).then(() => process.exit(code));
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

start("relay", process.execPath, ["--import", "tsx", "relay/main.ts",
  "--listening-ip=127.0.0.1", `--listening-port=${relayPort}`, "--allow-loopback-peers", "--realm=relaykit.local",
], { RELAY_STATIC_AUTH_SECRET: secret });

// AUTH_MODE=open on purpose: this is the local demo, with open rooms and credentials for anyone. A
// Worker with TURN_SECRETS but neither JOIN_SECRET nor AUTH_MODE=open refuses open rooms (it looks
// like production; worker/config.ts openRoomsRefusal).
start("Worker", process.execPath, ["node_modules/wrangler/bin/wrangler.js", "dev", "--local", "--ip", "127.0.0.1", "--port", port,
  "--var", `TURN_SECRETS:${secret}`, "--var", `TURN_URLS:${turnUrls}`, "--var", "AUTH_MODE:open",
], {});

console.log(`
relaykit is starting locally:
  demo room     http://127.0.0.1:${port}/  (open the room link in two tabs to make a call)
  ICE test      http://127.0.0.1:${port}/ice-test
  signaling     ws://127.0.0.1:${port}/v1/rooms/<room>
  ICE servers   http://127.0.0.1:${port}/v1/ice-servers
  STUN/TURN     127.0.0.1:${relayPort} (UDP and TCP)
Try: node scripts/signal-demo.mjs ws://127.0.0.1:${port}
Ctrl-C stops both.
`);
