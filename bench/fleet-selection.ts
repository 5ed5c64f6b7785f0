/**
 * `npm run bench:fleet`: what choosing relays costs a caller of `/v1/ice-servers`, on local workerd.
 *
 * Two Workers (`wrangler dev`) side by side, the same build and settings but one: the first has no
 * FLEET_KEYS and hands out a fixed TURN_URLS, as before the fleet; the second has FLEET_KEYS and
 * `--relays` registered relays (real control channels from this process: fleet tokens, `register`,
 * a heartbeat every 5 s, at different places and loads), so every answer is a selection. Requests
 * alternate between the two, one at a time on a kept-alive connection, after a warm-up, and the
 * figures are the latency percentiles each side saw and their difference (the fleet's cost).
 *
 *   npm run bench:fleet -- [--requests N] [--relays N] [--out FILE]
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join as joinPath } from "node:path";
import WebSocket from "ws";
import { FLEET_SUBPROTOCOL, HEARTBEAT_INTERVAL_MS, type HeartbeatMessage, type RegisterMessage } from "../shared/fleet/protocol.js";
import { mintFleetToken } from "../shared/fleet/token.js";
import { freePort, installCleanupHandlers, pinned, pinning, repoRoot, startProcess, stopAll, waitForHttp, type Started } from "./lib/proc.js";
import { unwatchedWranglerConfigArgs } from "../test/node/wrangler-config.js";

const QUIET_WRANGLER = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" };
const START_TIMEOUT_MS = 60_000;
const WARM_UP_REQUESTS = 200;
const REGISTER_TIMEOUT_MS = 15_000;
/**
 * The API keys both Workers accept, so the requests are the ones an app backend makes. Issuance is
 * rate-limited per key (ISSUE_RATE_LIMITER: 50 per 10 s), so the requests take turns over enough
 * keys to stay under it; both Workers check the same list, so it costs them alike.
 */
const API_KEYS = Array.from({ length: 80 }, () => randomBytes(24).toString("base64url"));
let nextKey = 0;

function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  return argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}


function startWorker(name: string, port: number, core: number | undefined, vars: Record<string, string>): Started {
  const varFlags = Object.entries(vars).flatMap(([key, value]) => ["--var", `${key}:${value}`]);
  // Storage of its own: two workerd processes on one state directory lock each other's SQLite out (SQLITE_BUSY).
  const state = mkdtempSync(joinPath(tmpdir(), "relaykit-bench-fleet-state-"));
  process.once("exit", () => rmSync(state, { recursive: true, force: true }));
  const [command, args] = pinned(core, process.execPath, [
    "node_modules/wrangler/bin/wrangler.js", "dev", ...unwatchedWranglerConfigArgs(), "--local", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0",
    "--persist-to", state, ...varFlags,
  ]);
  return startProcess(name, command, args, { env: QUIET_WRANGLER });
}

/** One registered relay: a real control channel that sends its registration and heartbeats. */
async function registerRelay(workerPort: number, fleetKey: string, index: number): Promise<WebSocket> {
  const relayId = `bench-relay-${index}`;
  const token = await mintFleetToken(fleetKey, relayId);
  const ws = new WebSocket(`ws://127.0.0.1:${workerPort}/v1/fleet`, FLEET_SUBPROTOCOL, { headers: { Authorization: `Bearer ${token}` } });
  const register: RegisterMessage = {
    type: "register",
    relayId,
    version: "bench",
    urls: [`turn:127.0.0.${10 + index}:3478?transport=udp`, `turn:127.0.0.${10 + index}:3478?transport=tcp`],
    region: `region-${index % 5}`,
    // Spread over Europe, so the order depends on distance and, within 50 km, on load.
    location: { lat: 40 + (index % 10), lon: -5 + Math.floor(index / 10) * 10 },
    capacity: { allocations: 1000, bps: 0 },
  };
  const heartbeat = (): HeartbeatMessage => ({
    type: "heartbeat", state: "ready", allocations: (index * 37) % 900, bpsIn: 1e6, bpsOut: 1e6, cpuPercent: 10, eventLoopDelayMs: 1,
    rooms: [{ room: `room-${index}`, allocations: 2 }], roomsOmitted: 0,
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${relayId} was not registered within ${REGISTER_TIMEOUT_MS} ms`)), REGISTER_TIMEOUT_MS);
    ws.once("error", (error) => reject(error));
    ws.once("close", (code, reason) => reject(new Error(`${relayId}: the fleet closed the channel (${code} ${reason.toString()})`)));
    ws.once("open", () => ws.send(JSON.stringify(register)));
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.includes('"registered"')) {
        clearTimeout(timer);
        ws.send(JSON.stringify(heartbeat()));
        resolve();
      }
    });
  });
  const timer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(heartbeat())), HEARTBEAT_INTERVAL_MS);
  ws.once("close", () => clearInterval(timer));
  return ws;
}

async function timedGet(url: string): Promise<{ ms: number; body: string }> {
  const started = performance.now();
  const key = API_KEYS[nextKey++ % API_KEYS.length]!;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  const body = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${body.slice(0, 300)}`);
  return { ms, body };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const requests = Number(option(argv, "requests") ?? 2000);
  const relayCount = Number(option(argv, "relays") ?? 20);
  if (!Number.isInteger(requests) || requests < 100) throw new Error("--requests must be a whole number of at least 100");
  if (!Number.isInteger(relayCount) || relayCount < 1 || relayCount > 100) throw new Error("--relays must be 1 to 100");
  const date = new Date().toISOString().replace(/[:]/g, "-").replace(/\..*/, "");
  const out = option(argv, "out") ?? joinPath(repoRoot, "bench", "results", `fleet-selection-${date}.json`);
  installCleanupHandlers();

  const cores = pinning();
  if (cores.load !== undefined) {
    try {
      execFileSync("taskset", ["-a", "-p", "-c", String(cores.load), String(process.pid)], { stdio: "ignore" });
    } catch {
      // not fatal: the figures are then less steady
    }
  }
  const secret = randomBytes(32).toString("base64url");
  const fleetKey = randomBytes(32).toString("base64url");
  const common = { TURN_SECRETS: secret, API_KEYS: API_KEYS.join(","), FLEET_LOCATION_HEADER: "on" };
  const plainPort = await freePort();
  const fleetPort = await freePort();
  const plain = startWorker("wrangler dev (TURN_URLS)", plainPort, cores.server, { ...common, TURN_URLS: "turn:127.0.0.9:3478?transport=udp,turn:127.0.0.9:3478?transport=tcp" });
  const fleet = startWorker("wrangler dev (fleet)", fleetPort, cores.server, { ...common, FLEET_KEYS: fleetKey });
  try {
    const answersUpgradeRequired = (status: number) => status === 426;
    await Promise.all([
      waitForHttp(`http://127.0.0.1:${plainPort}/v1/rooms/probe`, plain, answersUpgradeRequired, START_TIMEOUT_MS),
      waitForHttp(`http://127.0.0.1:${fleetPort}/v1/rooms/probe`, fleet, answersUpgradeRequired, START_TIMEOUT_MS),
    ]);
    const channels: WebSocket[] = [];
    for (let i = 0; i < relayCount; i++) channels.push(await registerRelay(fleetPort, fleetKey, i));

    const urls = { plain: `http://127.0.0.1:${plainPort}/v1/ice-servers`, fleet: `http://127.0.0.1:${fleetPort}/v1/ice-servers` };
    // The fleet's answer must be a selection from the registered relays (127.0.0.10 and up), not the fallback.
    const first = JSON.parse((await timedGet(urls.fleet)).body) as { iceServers: { urls: string | string[] }[] };
    const handedOut = first.iceServers.flatMap((server) => (Array.isArray(server.urls) ? server.urls : [server.urls])).filter((url) => url.startsWith("turn"));
    if (handedOut.length === 0 || handedOut.some((url) => !/^turns?:127\.0\.0\.(1\d|[2-9]\d|1[01]\d):/.test(url))) {
      throw new Error(`the fleet Worker did not hand out registered relays: ${JSON.stringify(first).slice(0, 300)}`);
    }
    for (let i = 0; i < WARM_UP_REQUESTS; i++) {
      await timedGet(urls.plain);
      await timedGet(urls.fleet);
    }
    const samples = { plain: [] as number[], fleet: [] as number[] };
    for (let i = 0; i < requests; i++) {
      // Alternating, so drift in the machine's load falls on both sides alike.
      samples.plain.push((await timedGet(urls.plain)).ms);
      samples.fleet.push((await timedGet(urls.fleet)).ms);
    }
    for (const ws of channels) ws.close(1000, "bench done");

    const figures = Object.fromEntries(
      (["plain", "fleet"] as const).map((side) => {
        const sorted = [...samples[side]].sort((a, b) => a - b);
        return [side, { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), requests: sorted.length }];
      }),
    ) as Record<"plain" | "fleet", { p50: number; p90: number; p99: number; requests: number }>;
    const addedP50 = figures.fleet.p50 - figures.plain.p50;
    const addedP99 = figures.fleet.p99 - figures.plain.p99;
    const result = { date: new Date().toISOString(), relays: relayCount, requests, figures, addedP50Ms: addedP50, addedP99Ms: addedP99 };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

    const fmt = (ms: number) => ms.toFixed(2);
    process.stdout.write(
      [
        `/v1/ice-servers on local workerd, ${requests} requests each, alternating (${relayCount} relays registered on the fleet side)`,
        "| Worker | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|",
        `| TURN_URLS, no fleet | ${fmt(figures.plain.p50)} | ${fmt(figures.plain.p90)} | ${fmt(figures.plain.p99)} |`,
        `| fleet, ${relayCount} relays | ${fmt(figures.fleet.p50)} | ${fmt(figures.fleet.p90)} | ${fmt(figures.fleet.p99)} |`,
        `added by the fleet: p50 ${fmt(addedP50)} ms (target < 2 ms: ${addedP50 < 2 ? "met" : "NOT met"}), p99 ${fmt(addedP99)} ms`,
        `written to ${out}`,
        "",
      ].join("\n"),
    );
    return 0;
  } finally {
    await stopAll();
  }
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    process.stderr.write(`bench:fleet: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopAll();
    process.exit(1);
  },
);
