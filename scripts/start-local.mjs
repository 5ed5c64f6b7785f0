#!/usr/bin/env node
// `npm start`: the whole stack on this machine, with no account and no network.
// - the relay (STUN/TURN on UDP and TCP, loopback peers allowed) on 127.0.0.1:<relay-port>
// - the Worker (signaling + credentials) in local workerd on 127.0.0.1:<port>
// Both share one freshly generated secret, so /v1/ice-servers and the welcome frame hand out
// credentials the relay accepts. Ctrl-C (or SIGTERM) stops both.
//
// With `--relays N` (2-4) it runs a fleet instead: N relays on <relay-port>, <relay-port>+1, ...,
// each with its own slice of relay ports, registered with the Worker over the fleet control channel
// (a fresh FLEET_KEYS), which hands out the nearest live relays instead of a fixed TURN_URLS.
// relay-1 is placed nearest the Worker's default location, so calls start there; drain it
// (`kill -TERM <pid>` or `kill -USR1 <pid>`, pids printed below) and its calls move to relay-2.
//
// Options: --port N (Worker, default 8787), --relay-port N (default 3478), --relays N (default 1),
// --fleet-pick N (FLEET_PICK with --relays, default 1 here so a call uses one relay at a time),
// --persist-to DIR (where local workerd keeps the rooms' storage; default: wrangler's .wrangler/state,
// which two stacks started at once must not share: their SQLite files lock each other out),
// --wrangler-config FILE (the Worker's wrangler configuration; default wrangler.toml. The test suites
// give one without [build]: its watcher's rebuild can reload the Worker just after it started, which
// drops every WebSocket on it).
// JOIN_SECRET, WEBHOOK_URL and WEBHOOK_SECRET, when set in the environment, are given to the Worker:
// try join tokens, or webhooks to a receiver on this machine.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    "relay-port": { type: "string", default: "3478" },
    relays: { type: "string", default: "1" },
    "fleet-pick": { type: "string", default: "1" },
    "persist-to": { type: "string" },
    "wrangler-config": { type: "string" },
  },
});
const port = values.port;
const relayPort = values["relay-port"];
for (const [name, value] of [["--port", port], ["--relay-port", relayPort]]) {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    console.error(`npm start: ${name} must be a port number (1-65535), not ${JSON.stringify(value)}`);
    process.exit(2);
  }
}
const relayCount = Number(values.relays);
if (!/^[1-4]$/.test(values.relays)) {
  console.error(`npm start: --relays must be 1 to 4, not ${JSON.stringify(values.relays)}`);
  process.exit(2);
}
if (!/^[1-9]$/.test(values["fleet-pick"])) {
  console.error(`npm start: --fleet-pick must be 1 to 9, not ${JSON.stringify(values["fleet-pick"])}`);
  process.exit(2);
}
if (Number(relayPort) + relayCount - 1 > 65535) {
  console.error(`npm start: --relay-port ${relayPort} leaves no room for ${relayCount} relays`);
  process.exit(2);
}
const wranglerConfig = values["wrangler-config"];
if (wranglerConfig !== undefined && !existsSync(wranglerConfig)) {
  console.error(`npm start: --wrangler-config ${JSON.stringify(wranglerConfig)}: no such file (leave it out to run wrangler.toml)`);
  process.exit(2);
}
const fleet = relayCount > 1;

const secret = randomBytes(32).toString("base64url");
const fleetKey = randomBytes(32).toString("base64url");
/** For the fleet page (/fleet) and GET /v1/fleet, which only an API key may read. */
const apiKey = randomBytes(24).toString("base64url");
const relayPorts = Array.from({ length: relayCount }, (_, index) => Number(relayPort) + index);
const turnUrls = [`turn:127.0.0.1:${relayPort}?transport=udp`, `turn:127.0.0.1:${relayPort}?transport=tcp`].join(",");
const quiet = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" };
/**
 * The Worker's default caller location, and each relay further east of it: relay-1 is nearest, both
 * from there and from the made-up request.cf that local wrangler dev gives every request (Texas),
 * which takes precedence over the default as a real one would.
 */
const HOME = { lat: 50, lon: 8 };
const RELAY_SPACING_DEGREES = 20;
/** Relay ports per relay of a fleet, so that relays on one host never compete for a port. */
const RELAY_PORTS_EACH = 2000;
const FIRST_RELAY_PORT = 50000;

const children = [];
/** `essential`: the rest stops when it does. A fleet's relay is not: draining one is the point. */
function start(name, command, args, env, essential = true) {
  const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...quiet, ...env } });
  child.on("exit", (code, signal) => {
    if (stopping) return;
    if (essential) {
      console.error(`npm start: the ${name} stopped (${signal ?? `exit ${code}`}); stopping the rest`);
      stop(code ?? 1);
    } else {
      console.error(`npm start: ${name} stopped (${signal ?? `exit ${code}`}); the others keep running`);
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

const started = [];
for (const [index, listeningPort] of relayPorts.entries()) {
  const relayId = `relay-${index + 1}`;
  const fleetFlags = fleet
    ? [
        `--fleet-url=ws://127.0.0.1:${port}/v1/fleet`, `--fleet-relay-id=${relayId}`, "--fleet-region=local",
        `--fleet-location=${HOME.lat},${HOME.lon + index * RELAY_SPACING_DEGREES}`,
        `--min-port=${FIRST_RELAY_PORT + index * RELAY_PORTS_EACH}`, `--max-port=${FIRST_RELAY_PORT + (index + 1) * RELAY_PORTS_EACH - 1}`,
        // A drained relay waits for its calls to move (it exits as soon as they have), at most this long.
        "--drain-timeout=60",
      ]
    : [];
  start(fleet ? relayId : "relay", process.execPath, ["--import", "tsx", "relay/main.ts",
    "--listening-ip=127.0.0.1", `--listening-port=${listeningPort}`, "--allow-loopback-peers", "--realm=relaykit.local", ...fleetFlags,
  ], {
    RELAY_STATIC_AUTH_SECRET: secret,
    ...(fleet ? { RELAY_FLEET_KEY: fleetKey } : {}),
    // One process per local relay (a host relay defaults to one worker per CPU): a laptop runs several
    // of them beside the Worker. RELAY_RELAY_THREADS in the environment still wins.
    RELAY_RELAY_THREADS: process.env.RELAY_RELAY_THREADS ?? "1",
  }, !fleet);
  started.push({ relayId, listeningPort, pid: children.at(-1).pid });
}

// AUTH_MODE=open on purpose: this is the local demo, with open rooms and credentials for anyone. A
// Worker with TURN_SECRETS but neither JOIN_SECRET nor AUTH_MODE=open refuses open rooms (it looks
// like production; worker/config.ts openRoomsRefusal).
const workerVars = fleet
  ? { TURN_SECRETS: secret, FLEET_KEYS: fleetKey, FLEET_PICK: values["fleet-pick"], FLEET_DEFAULT_LOCATION: `${HOME.lat},${HOME.lon}`, API_KEYS: apiKey, AUTH_MODE: "open" }
  : { TURN_SECRETS: secret, TURN_URLS: turnUrls, AUTH_MODE: "open" };
/** Settings a developer may try locally, taken from the environment when set. */
const PASSED_THROUGH = ["JOIN_SECRET", "WEBHOOK_URL", "WEBHOOK_SECRET", "ALLOWED_ORIGINS"];
for (const name of PASSED_THROUGH) if (process.env[name]) workerVars[name] = process.env[name];
start("Worker", process.execPath, ["node_modules/wrangler/bin/wrangler.js", "dev", "--local", "--ip", "127.0.0.1", "--port", port,
  ...(wranglerConfig !== undefined ? ["--config", wranglerConfig] : []),
  ...(values["persist-to"] !== undefined ? ["--persist-to", values["persist-to"]] : []),
  ...Object.entries(workerVars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
], {});

const relayLines = fleet
  ? started.map(({ relayId, listeningPort, pid }) => `  ${relayId.padEnd(13)} 127.0.0.1:${listeningPort} (UDP and TCP), pid ${pid}`).join("\n")
  : `  STUN/TURN     127.0.0.1:${relayPort} (UDP and TCP)`;
console.log(`
relaykit is starting locally:
  demo room     http://127.0.0.1:${port}/  (open the room link in two tabs to make a call)
  ICE test      http://127.0.0.1:${port}/ice-test
  signaling     ws://127.0.0.1:${port}/v1/rooms/<room>
  ICE servers   http://127.0.0.1:${port}/v1/ice-servers
${relayLines}${fleet ? `\n  fleet         http://127.0.0.1:${port}/fleet  (API key: ${apiKey})` : ""}
Try: node scripts/signal-demo.mjs ws://127.0.0.1:${port}
Ctrl-C stops them all.
`);
