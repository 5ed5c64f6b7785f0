/**
 * `npm run bench:signaling`: one room on the local Worker (`wrangler dev`, local workerd) against a PeerJS
 * server (npm `peer`) on the same machine, driven by the same client code through a small adapter:
 * - join latency: WebSocket connect → the first frame that says you are in (our `welcome`, PeerJS `OPEN`),
 *   p50/p99 over sequential joins to one room (each peer leaves again);
 * - relayed messages per second with 2 and 20 peers in one room: every peer sends to the next one (a ring)
 *   as fast as the window allows (a bounded number of its messages not yet delivered), for a fixed time.
 * The servers run pinned to core 0, this client to core 1 (when there are two). The Worker runs with its
 * per-connection rate limit and room capacity raised (PeerJS has neither): see `WORKER_VARS`.
 * Each server is measured twice: with the client offering permessage-deflate, as every browser does, and
 * without. Local workerd accepts the offer (so each frame is compressed and inflated on both ends) and the
 * PeerJS server declines it, so only the second pair compares the two servers' work per frame alone.
 * A third server, an empty Durable Object room on the same local workerd (bench/servers/floor-room),
 * shows how much of the Worker's time per frame is the local runtime's own.
 * Flags: --quick, --joins N, --duration S, --peers 2,20, --window N, --deflate on,off, --out FILE, --time-limit S.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join as joinPath } from "node:path";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { freePort, installCleanupHandlers, pinned, pinning, repoRoot, runningPids, sleep, startProcess, stopAll, waitForHttp, type Started } from "./lib/proc.js";
import { unwatchedWranglerConfigArgs } from "../test/node/wrangler-config.js";

const WORKER_VARS: Record<string, string> = {
  ROOM_CAPACITY: "64",
  RATE_LIMIT_BURST: "10000",
  RATE_LIMIT_PER_SECOND: "10000",
  ABUSE_STRIKE_LIMIT: "10000",
};
/** The third server: an empty Durable Object room on the same local workerd (bench/servers/floor-room). */
const FLOOR_NAME = "empty DO room (floor)";
const QUIET_WRANGLER = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" };
const START_TIMEOUT_MS = 60_000;
const JOIN_TIMEOUT_MS = 5_000;
const PAYLOAD = { candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXcT network-cost 999", sdpMid: "0", sdpMLineIndex: 0 };

interface Incoming {
  from: string;
  data: unknown;
}

/** What differs between the servers; everything else (timing, counting) is shared. */
interface Adapter {
  name: string;
  url(room: string, id: string): string;
  /** The peer id once this frame says the join is complete, else undefined. */
  joined(frame: Record<string, unknown>, requestedId: string): string | undefined;
  signal(to: string, data: unknown): string;
  incoming(frame: Record<string, unknown>): Incoming | undefined;
  leave(): string | undefined;
}

function oursAdapter(base: string, name = "relaykit Worker"): Adapter {
  return {
    name,
    url: (room) => `${base}/v1/rooms/${room}`,
    joined: (frame) => (frame["type"] === "welcome" ? String(frame["peerId"]) : undefined),
    signal: (to, data) => JSON.stringify({ type: "signal", to, data }),
    incoming: (frame) => (frame["type"] === "signal" ? { from: String(frame["from"]), data: frame["data"] } : undefined),
    leave: () => JSON.stringify({ type: "leave" }),
  };
}

function peerjsAdapter(base: string): Adapter {
  return {
    name: "PeerJS server",
    url: (_room, id) => `${base}/peerjs?key=peerjs&id=${id}&token=${Math.random().toString(36).slice(2)}`,
    joined: (frame, id) => (frame["type"] === "OPEN" ? id : undefined),
    signal: (to, data) => JSON.stringify({ type: "CANDIDATE", dst: to, payload: data }),
    incoming: (frame) => (frame["type"] === "CANDIDATE" ? { from: String(frame["src"]), data: frame["payload"] } : undefined),
    leave: () => undefined,
  };
}

interface Peer {
  id: string;
  ws: WebSocket;
  joinMs: number;
  onSignal?: (incoming: Incoming) => void;
}

/** How the client connects: whether it offers permessage-deflate (browsers always do). */
interface ClientMode {
  deflate: boolean;
}

function join(adapter: Adapter, room: string, index: number, mode: ClientMode): Promise<Peer> {
  const requestedId = `p${index}-${Math.random().toString(36).slice(2, 10)}`;
  const started = performance.now();
  const ws = new WebSocket(adapter.url(room, requestedId), { perMessageDeflate: mode.deflate });
  return new Promise<Peer>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${adapter.name}: no join within ${JOIN_TIMEOUT_MS} ms`));
    }, JOIN_TIMEOUT_MS);
    let peer: Peer | undefined;
    ws.on("message", (raw) => {
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(String(raw)) as Record<string, unknown>;
      } catch {
        return;
      }
      if (peer === undefined) {
        const id = adapter.joined(frame, requestedId);
        if (id !== undefined) {
          clearTimeout(timer);
          peer = { id, ws, joinMs: performance.now() - started };
          resolve(peer);
        } else if (frame["type"] === "error" || frame["type"] === "ERROR") {
          clearTimeout(timer);
          ws.terminate();
          reject(new Error(`${adapter.name}: ${JSON.stringify(frame)}`));
        }
        return;
      }
      const incoming = adapter.incoming(frame);
      if (incoming !== undefined) peer.onSignal?.(incoming);
    });
    ws.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function leave(adapter: Adapter, peer: Peer): Promise<void> {
  const frame = adapter.leave();
  if (frame !== undefined && peer.ws.readyState === WebSocket.OPEN) peer.ws.send(frame);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      peer.ws.terminate();
      resolve();
    }, 1_000);
    peer.ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    if (frame === undefined) peer.ws.close();
  });
}

function percentile(values: number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function joinLatency(adapter: Adapter, room: string, joins: number, mode: ClientMode): Promise<{ p50: number | undefined; p99: number | undefined; samples: number; negotiated: string }> {
  const samples: number[] = [];
  let negotiated = "";
  for (let i = 0; i < joins + 5; i++) {
    const peer = await join(adapter, room, i, mode);
    if (i >= 5) samples.push(peer.joinMs); // the first joins wake the room (a Durable Object) and warm up
    negotiated = peer.ws.extensions || "none";
    await leave(adapter, peer);
  }
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), samples: samples.length, negotiated };
}

async function relayRate(adapter: Adapter, room: string, peers: number, durationSeconds: number, window: number, mode: ClientMode): Promise<{ messagesPerSecond: number; delivered: number }> {
  const joined: Peer[] = [];
  try {
    for (let i = 0; i < peers; i++) joined.push(await join(adapter, room, 1000 + i, mode));
    let delivered = 0;
    let sending = true;
    // Each delivery lets its sender send one more: every peer keeps `window` messages on the way.
    const sendFrom = (from: Peer, to: Peer) => from.ws.send(adapter.signal(to.id, PAYLOAD));
    joined.forEach((peer, i) => {
      const next = joined[(i + 1) % joined.length]!;
      peer.onSignal = (incoming) => {
        delivered += 1;
        const sender = joined.find((p) => p.id === incoming.from);
        if (sending && sender !== undefined) sendFrom(sender, joined[(joined.indexOf(sender) + 1) % joined.length]!);
      };
      for (let w = 0; w < window; w++) sendFrom(peer, next);
    });
    const started = performance.now();
    await sleep(durationSeconds * 1000);
    const counted = delivered;
    const elapsed = (performance.now() - started) / 1000;
    sending = false;
    return { messagesPerSecond: counted / elapsed, delivered: counted };
  } finally {
    await Promise.all(joined.map((peer) => leave(adapter, peer)));
  }
}

function parse(argv: string[]) {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    return argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  };
  const quick = argv.includes("--quick");
  const date = new Date().toISOString().replace(/[:]/g, "-").replace(/\..*/, "");
  return {
    quick,
    joins: Number(get("joins") ?? (quick ? 10 : 200)),
    durationSeconds: Number(get("duration") ?? (quick ? 1 : 5)),
    peers: (get("peers") ?? "2,20").split(",").map(Number),
    window: Number(get("window") ?? 4),
    deflate: (get("deflate") ?? "on,off").split(",").map((value) => {
      if (value !== "on" && value !== "off") throw new Error(`--deflate takes on, off or on,off; got ${JSON.stringify(value)}`);
      return value === "on";
    }),
    out: get("out") ?? joinPath(repoRoot, "bench", "results", `signaling-${date}${quick ? "-quick" : ""}.json`),
    timeLimitSeconds: Number(get("time-limit") ?? (quick ? 120 : 900)),
  };
}

async function main(): Promise<number> {
  const options = parse(process.argv.slice(2));
  installCleanupHandlers();
  setTimeout(() => {
    process.stderr.write(`bench:signaling: over the time limit of ${options.timeLimitSeconds} s, stopping everything\n`);
    void stopAll().finally(() => process.exit(124));
  }, options.timeLimitSeconds * 1000).unref();
  const cores = pinning();
  if (cores.load !== undefined) {
    try {
      execFileSync("taskset", ["-a", "-p", "-c", String(cores.load), String(process.pid)], { stdio: "ignore" });
    } catch {
      // not fatal
    }
  }

  const workerPort = await freePort();
  const varFlags = Object.entries(WORKER_VARS).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
  const [wCommand, wArgs] = pinned(cores.server, process.execPath, [
    "node_modules/wrangler/bin/wrangler.js", "dev", ...unwatchedWranglerConfigArgs(), "--local", "--ip", "127.0.0.1", "--port", String(workerPort), "--inspector-port", "0", ...varFlags,
  ]);
  const peerPort = await freePort();
  const [pCommand, pArgs] = pinned(cores.server, process.execPath, ["bench/servers/peerjs.cjs", String(peerPort)]);
  const floorPort = await freePort();
  const [fCommand, fArgs] = pinned(cores.server, process.execPath, [
    "node_modules/wrangler/bin/wrangler.js", "dev", "--config", "bench/servers/floor-room/wrangler.toml", "--local", "--ip", "127.0.0.1", "--port", String(floorPort), "--inspector-port", "0",
  ]);

  const results: Record<string, unknown>[] = [];
  const servers: [Adapter, () => Promise<Started>][] = [
    [
      oursAdapter(`ws://127.0.0.1:${workerPort}`),
      async () => {
        const worker = startProcess("wrangler dev", wCommand, wArgs, { env: QUIET_WRANGLER });
        await waitForHttp(`http://127.0.0.1:${workerPort}/v1/rooms/probe`, worker, (status) => status === 426, START_TIMEOUT_MS);
        return worker;
      },
    ],
    [
      peerjsAdapter(`ws://127.0.0.1:${peerPort}`),
      async () => {
        const peerjs = startProcess("peerjs", pCommand, pArgs);
        await waitForHttp(`http://127.0.0.1:${peerPort}/`, peerjs, (status) => status < 500, START_TIMEOUT_MS);
        return peerjs;
      },
    ],
    [
      // Same wire as ours, so the same adapter; the floor of local workerd (bench/servers/floor-room).
      oursAdapter(`ws://127.0.0.1:${floorPort}`, FLOOR_NAME),
      async () => {
        const floor = startProcess("wrangler dev (floor)", fCommand, fArgs, { env: QUIET_WRANGLER });
        await waitForHttp(`http://127.0.0.1:${floorPort}/v1/rooms/probe`, floor, (status) => status === 426, START_TIMEOUT_MS);
        return floor;
      },
    ],
  ];
  for (const [adapter, start] of servers) {
    const server = await start();
    try {
      for (const deflate of options.deflate) {
        const mode = { deflate };
        const room = `bench-${Date.now().toString(36)}-${deflate ? "d" : "p"}`;
        const latency = await joinLatency(adapter, room, options.joins, mode);
        const row: Record<string, unknown> = { server: adapter.name, deflateOffered: deflate, negotiated: latency.negotiated, joinP50Ms: latency.p50, joinP99Ms: latency.p99, joins: latency.samples };
        for (const peers of options.peers) {
          const rate = await relayRate(adapter, `${room}-relay${peers}`, peers, options.durationSeconds, options.window, mode);
          row[`msgPerSec${peers}`] = rate.messagesPerSecond;
        }
        results.push(row);
        process.stderr.write(`  ${JSON.stringify(row)}\n`);
      }
    } finally {
      await server.stop();
    }
  }
  await stopAll();

  const fmt = (value: unknown, digits: number) => (typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "-");
  const header = ["server", "client offers deflate", "negotiated", "join p50 ms", "join p99 ms", ...options.peers.map((peers) => `msg/s, ${peers} peers`)];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const row of results) {
    lines.push(`| ${String(row["server"])} | ${row["deflateOffered"] ? "yes" : "no"} | ${String(row["negotiated"])} | ${fmt(row["joinP50Ms"], 2)} | ${fmt(row["joinP99Ms"], 2)} | ${options.peers.map((peers) => fmt(row[`msgPerSec${peers}`], 0)).join(" | ")} |`);
  }
  const top = options.peers[options.peers.length - 1];
  const targets: string[] = [];
  const [oursName, peerjsName, floorName] = servers.map(([adapter]) => adapter.name);
  const rowOf = (server: string | undefined, deflate: boolean) => results.find((row) => row["server"] === server && row["deflateOffered"] === deflate);
  for (const deflate of options.deflate) {
    const ours = rowOf(oursName, deflate);
    const theirs = rowOf(peerjsName, deflate);
    const floor = rowOf(floorName, deflate);
    const ratio = ours && theirs ? Number(ours[`msgPerSec${top}`]) / Number(theirs[`msgPerSec${top}`]) : undefined;
    const ofFloor = ours && floor ? Number(ours[`msgPerSec${top}`]) / Number(floor[`msgPerSec${top}`]) : undefined;
    const offered = deflate ? "client offering deflate" : "client without deflate";
    const joinP50 = ours?.["joinP50Ms"];
    targets.push(
      `${offered}: msg/s with ${top} peers, Worker ÷ PeerJS: ${fmt(ratio, 2)} (target ≥ 1: ${ratio !== undefined && ratio >= 1 ? "met" : "NOT met"})`,
      `${offered}: join p50 on the Worker: ${fmt(joinP50, 2)} ms (target < 5 ms: ${typeof joinP50 === "number" && joinP50 < 5 ? "met" : "NOT met"})`,
      `${offered}: msg/s with ${top} peers, Worker ÷ the empty room on the same local workerd: ${fmt(ofFloor, 2)} (how close the Worker is to what local workerd allows; no target)`,
    );
  }
  const date = new Date().toISOString();
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify({ date, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadAverage: loadavg() }, options, workerVars: WORKER_VARS, results, targets }, null, 2)}\n`);
  process.stdout.write(
    [
      "",
      `## relaykit signaling bench, ${date} (${String(cpus()[0]?.model)}, ${cpus().length} cores, Node ${process.version})`,
      "",
      ...lines,
      "",
      ...targets.map((target) => `- ${target}`),
      `- the Worker ran with ${Object.entries(WORKER_VARS).map(([k, v]) => `${k}=${v}`).join(", ")} (PeerJS has no per-connection rate limit); ${options.joins} joins, window ${options.window} per peer, ${options.durationSeconds} s per relay run`,
      `JSON: ${options.out}`,
      "",
    ].join("\n"),
  );
  return runningPids().length === 0 ? 0 : 1;
}

main()
  .then((code) => process.exit(code))
  .catch(async (error: unknown) => {
    process.stderr.write(`bench:signaling: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopAll();
    process.exit(1);
  });
