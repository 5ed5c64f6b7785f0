/**
 * The loads and how one load is measured against one running server.
 *
 * - `uclient-*`: coturn's `turnutils_uclient` (no RTCP pair, `-z 1`: one message per millisecond per
 *   client) echoing through `turnutils_peer`, both on the load core. Over UDP: Send/Data indications (`-s`)
 *   or channels; 10, 100 or 200 clients; 100- or 1000-byte messages. Over TCP (`-t`) and TLS (`-t -S`):
 *   channels, 50 clients, 300 messages of 100 bytes.
 * - `gen-channel`, `gen-send`, `gen-tcp-channel`, `gen-tls-channel`: our generator (lib/generator.ts), a long
 *   run of ChannelData or Send indications with a window in flight, echoing through `turnutils_peer`.
 * - `lifecycle`: our generator running complete allocation lifecycles (401 + Allocate, CreatePermission,
 *   ChannelBind, Refresh, delete), 32 at once.
 * - `alloc`: our generator allocating (each with its own 401 challenge) up to 1,000 then 10,000 idle
 *   allocations; the rate, and the server's resident memory and idle CPU at 0, 1,000 and 10,000.
 *
 * CPU is the server's own accounting (utime + stime of every thread, /proc/<pid>/stat). Every message load
 * has two figures: the whole run (from just before the first client's first packet until the last client is
 * gone: uclient exited, or the generator deleted its allocations and exited; teardown included) and the
 * data window (uclient: from its "Total connect time" line to its exit; generator: its send phase).
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { ClientTransport, GeneratorOptions, GeneratorResult } from "./generator.js";
import { cpuSeconds, freePort, pinned, preciseCpuSeconds, rssBytes, sleep, startProcess, type Started } from "./proc.js";
import type { BenchServer, ClientTools, ServerName } from "./servers.js";

export type LoadSpec =
  | { id: string; kind: "uclient"; transport: ClientTransport; mode: "send" | "channel"; clients: number; messages: number; size: number }
  | { id: string; kind: "gen"; transport: ClientTransport; mode: "send" | "channel"; allocations: number; size: number; durationSeconds: number; window: number }
  | { id: string; kind: "lifecycle"; total: number; concurrency: number }
  | { id: string; kind: "alloc"; checkpoints: number[]; settleMs: number; settleMaxMs: number; idleWindowMs: number };

export interface Measurement {
  server: ServerName;
  load: string;
  round: number;
  status: "ok" | "n/a" | "failed";
  note?: string;
  sent?: number;
  received?: number;
  lossPercent?: number;
  messagesPerSecond?: number;
  /** Server CPU-seconds over the whole run (see the module comment). */
  cpuSeconds?: number;
  /** Whole run, per 1,000 echoed messages. */
  cpuPer1kWhole?: number;
  /** Data window, per 1,000 echoed messages. */
  cpuPer1kData?: number;
  /** lifecycle: complete lifecycles, their rate, and whole-run CPU-seconds per 1,000 of them. */
  lifecycles?: number;
  lifecyclesPerSecond?: number;
  cpuPer1kLifecycles?: number;
  /** alloc: % of one core the settled server used, idle, at 0 and at each checkpoint (keys as rssMb's). */
  idleCpuPercent?: Record<string, number>;
  /** alloc: how long the server took to settle before each idle window, ms (keys as rssMb's). */
  idleSettleMs?: Record<string, number>;
  rttP50Ms?: number;
  rttP99Ms?: number;
  rttMeanMs?: number;
  allocationsPerSecond?: number;
  allocated?: number;
  rssMb?: Record<string, number>;
  wallSeconds?: number;
  /** Server CPU-seconds of the untimed warm-up before the load (see `warmUp`); not in any other figure. */
  warmUpCpuSeconds?: number;
  /**
   * UDP datagrams the kernel dropped for a full receive buffer during the load (RcvbufErrors in
   * /proc/net/snmp: the whole network namespace, so any program's sockets; a hint at who lost what).
   */
  udpReceiveBufferDrops?: number;
}

/** RcvbufErrors from /proc/net/snmp (0 when unreadable). */
export function udpReceiveBufferErrors(): number {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8").split("\n").filter((line) => line.startsWith("Udp:"));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    return Number(values[names.indexOf("RcvbufErrors")] ?? 0) || 0;
  } catch {
    return 0;
  }
}

export interface LoadSizes {
  quick: boolean;
  /** Seconds of sending for the generator's long runs. */
  durationSeconds: number;
  /** Messages per uclient client, per client count. */
  uclientMessages: (clients: number) => number;
  idleCheckpoints: number[];
  /** Lifecycles in the lifecycle load. */
  lifecycles: number;
}

/** Allocation lifecycles at once (issue 16: "e.g. 32 at once"). */
const LIFECYCLE_CONCURRENCY = 32;
/** Stream loads, as issue 16's table: 50 clients × 300 messages of 100 B. */
const STREAM_UCLIENT = { clients: 50, messages: 300, size: 100 };
/**
 * Idle CPU: the server settles at least IDLE_SETTLE_MS after the last allocation, and then until it
 * spends under SETTLED_CPU_PERCENT of a core over a whole SETTLE_SAMPLE_MS (at most
 * IDLE_SETTLE_MAX_MS in all), then is measured for IDLE_WINDOW_MS. Without the second condition the
 * window took in a burst's tail at random: on our relay, the garbage collection that the 9,000
 * allocations before the 10,000 checkpoint start ends 1.5-3 s after the last one (25-40 ms of CPU,
 * up to 0.8 % of a core over the window), which moved the figure by up to a core-percent between runs.
 */
const IDLE_SETTLE_MS = 2_000;
const IDLE_SETTLE_MAX_MS = 10_000;
const SETTLE_SAMPLE_MS = 1_000;
const SETTLED_CPU_PERCENT = 1.5;
const IDLE_WINDOW_MS = 5_000;
const QUICK_IDLE_SETTLE_MS = 200;
const QUICK_IDLE_WINDOW_MS = 300;

export function defineLoads(sizes: LoadSizes): LoadSpec[] {
  const loads: LoadSpec[] = [];
  const clientCounts = sizes.quick ? [2] : [10, 100, 200];
  const messageSizes = sizes.quick ? [100] : [100, 1000];
  for (const mode of sizes.quick ? (["send"] as const) : (["send", "channel"] as const)) {
    for (const clients of clientCounts) {
      for (const size of messageSizes) {
        loads.push({ id: `uclient-${mode}-m${clients}-l${size}`, kind: "uclient", transport: "udp", mode, clients, messages: sizes.uclientMessages(clients), size });
      }
    }
  }
  // Not in the quick smoke: uclient over TCP/TLS takes ~15 s per server even with 2 clients (the stream
  // path is smoked by the generator's TLS load instead).
  if (!sizes.quick) {
    for (const transport of ["tcp", "tls"] as const) {
      const { clients, messages, size } = STREAM_UCLIENT;
      loads.push({ id: `uclient-${transport}-channel-m${clients}-l${size}`, kind: "uclient", transport, mode: "channel", clients, messages, size });
    }
  }
  const allocations = sizes.quick ? 10 : 100;
  const window = sizes.quick ? 20 : 200;
  const gen = { kind: "gen", allocations, size: 100, durationSeconds: sizes.durationSeconds, window } as const;
  // Quick: ChannelData is smoked over TLS (gen-tls-channel), to stay under a minute.
  if (!sizes.quick) loads.push({ id: "gen-channel-l100", transport: "udp", mode: "channel", ...gen });
  loads.push({ id: "gen-send-l100", transport: "udp", mode: "send", ...gen });
  // Quick: TLS alone stands for both streams (the same framing, with TLS on top).
  if (!sizes.quick) loads.push({ id: "gen-tcp-channel-l100", transport: "tcp", mode: "channel", ...gen });
  loads.push({ id: "gen-tls-channel-l100", transport: "tls", mode: "channel", ...gen });
  loads.push({ id: "lifecycle", kind: "lifecycle", total: sizes.lifecycles, concurrency: LIFECYCLE_CONCURRENCY });
  loads.push({
    id: "alloc",
    kind: "alloc",
    checkpoints: sizes.idleCheckpoints,
    settleMs: sizes.quick ? QUICK_IDLE_SETTLE_MS : IDLE_SETTLE_MS,
    settleMaxMs: sizes.quick ? QUICK_IDLE_SETTLE_MS : IDLE_SETTLE_MAX_MS,
    idleWindowMs: sizes.quick ? QUICK_IDLE_WINDOW_MS : IDLE_WINDOW_MS,
  });
  return loads;
}

/** Why a server cannot run a load at all (the table says "n/a" with this), or undefined. */
export function notApplicable(server: ServerName, load: LoadSpec): string | undefined {
  if (server !== "node-turn") return undefined;
  if ((load.kind === "uclient" || load.kind === "gen") && load.transport !== "udp") return "UDP only: node-turn 0.0.6 has no TCP or TLS listener";
  if (load.kind === "lifecycle") {
    return "no lifecycle to measure: node-turn 0.0.6 deletes the allocation on any Refresh, so the lifecycle's last step (the delete) answers 437 Allocation Mismatch";
  }
  if (load.kind === "uclient") {
    return "cannot serve turnutils_uclient: node-turn 0.0.6 drops any request with an attribute it does not know, and uclient's Allocate carries EVEN-PORT/REQUESTED-ADDRESS-FAMILY";
  }
  if (load.kind === "gen" && load.mode === "channel") return "cannot relay ChannelData: node-turn 0.0.6 drops ChannelData from clients";
  return undefined;
}

const UCLIENT_BASE_TIMEOUT_MS = 60_000;
const GENERATOR_SETUP_TIMEOUT_MS = 120_000;
const PHASE_TIMEOUT_MS = 180_000;
/** After the last client is gone, the server's own teardown (closing connections, freeing relays) gets this long. */
const TEARDOWN_SETTLE_MS = 200;
const GENERATOR_EXIT_TIMEOUT_MS = 10_000;
/** Activity sampling for uclient's messages per second. */
const SAMPLE_MS = 50;

export async function startEchoPeer(core: number | undefined, tools: ClientTools): Promise<{ port: number; process: Started }> {
  const port = await freePort();
  const [command, args] = pinned(core, tools.peer, ["-L", "127.0.0.1", "-p", String(port)]);
  const peer = startProcess("turnutils_peer", command, args);
  // turnutils_peer binds at once; give it a moment and check it is still there.
  await sleep(150);
  const exited = peer.exited();
  if (exited !== undefined) throw new Error(`turnutils_peer ${exited}: ${peer.output()}`);
  return { port, process: peer };
}

function credentialArgs(server: BenchServer): string[] {
  return server.auth.kind === "rest" ? ["-W", server.auth.secret, "-u", "bench"] : ["-u", server.auth.username, "-w", server.auth.password];
}

/**
 * One uclient run. Messages per second: uclient starts each client at a random moment 1-6 s after
 * connecting and reports time in whole seconds, so the rate is echoed messages over the span in which the
 * server was busy (its CPU time sampled every 50 ms from /proc, from uclient's "Total connect time" line
 * to its exit).
 */
export async function runUclient(server: BenchServer, load: Extract<LoadSpec, { kind: "uclient" }>, core: number | undefined, tools: ClientTools): Promise<Omit<Measurement, "server" | "load" | "round">> {
  const peer = await startEchoPeer(core, tools);
  try {
    if (load.transport === "tls" && server.tlsPort === undefined) return { status: "n/a", note: `${server.name} has no TLS listener` };
    // -t: TCP to the server; -S with it: TLS, to -p (so the TLS port).
    const args = [
      ...(load.transport === "udp" ? [] : load.transport === "tcp" ? ["-t"] : ["-t", "-S"]),
      ...(load.mode === "send" ? ["-s"] : []),
      "-c",
      "-m", String(load.clients),
      "-n", String(load.messages),
      "-l", String(load.size),
      "-z", "1",
      "-e", "127.0.0.1",
      "-r", String(peer.port),
      "-p", String(load.transport === "tls" ? server.tlsPort : server.port),
      ...credentialArgs(server),
      "127.0.0.1",
    ];
    const timeoutMs = UCLIENT_BASE_TIMEOUT_MS + load.messages * 2;
    const idleStart = preciseCpuSeconds(server.pid);
    await sleep(300);
    const idleRate = (preciseCpuSeconds(server.pid) - idleStart) / 0.3;
    const cpuBefore = cpuSeconds(server.pid);
    const dropsBefore = udpReceiveBufferErrors();
    const wallStart = performance.now();
    const [command, full] = pinned(core, tools.uclient, args);
    const uclient = startProcess("turnutils_uclient", command, full);
    let connectedAt: number | undefined;
    const samples: { t: number; cpu: number }[] = [];
    const deadline = Date.now() + timeoutMs;
    while (uclient.exited() === undefined && Date.now() < deadline) {
      await sleep(SAMPLE_MS);
      if (connectedAt === undefined && uclient.output().includes("Total connect time")) connectedAt = performance.now();
      if (connectedAt !== undefined) samples.push({ t: performance.now(), cpu: preciseCpuSeconds(server.pid) });
    }
    const timedOut = uclient.exited() === undefined;
    await uclient.stop();
    await sleep(TEARDOWN_SETTLE_MS);
    const wallSeconds = (performance.now() - wallStart) / 1000;
    const cpu = cpuSeconds(server.pid) - cpuBefore;
    const dataCpu = samples.length > 0 ? preciseCpuSeconds(server.pid) - samples[0]!.cpu : undefined;
    const udpReceiveBufferDrops = udpReceiveBufferErrors() - dropsBefore;
    const output = uclient.output();
    const totals = /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(output);
    const rtt = /Average round trip delay ([\d.]+) ms/.exec(output);
    if (totals === null) {
      return { status: "failed", note: `uclient ${timedOut ? `timed out after ${timeoutMs} ms` : "printed no totals"}: ${lastLines(output)}`, cpuSeconds: cpu, wallSeconds };
    }
    const sent = Number(totals[1]);
    const received = Math.min(sent, Number(totals[2]));
    const busy = busySpan(samples, idleRate);
    return {
      status: "ok",
      sent,
      received,
      lossPercent: sent > 0 ? (100 * (sent - received)) / sent : 0,
      messagesPerSecond: busy > 0 ? received / busy : undefined,
      cpuSeconds: cpu,
      cpuPer1kWhole: received > 0 ? (cpu / received) * 1000 : undefined,
      cpuPer1kData: received > 0 && dataCpu !== undefined ? (dataCpu / received) * 1000 : undefined,
      rttMeanMs: rtt ? Number(rtt[1]) : undefined,
      wallSeconds,
      udpReceiveBufferDrops,
      ...(timedOut ? { note: "uclient timed out" } : {}),
    };
  } finally {
    await peer.process.stop();
  }
}

/** Seconds from the first to the last sampling interval in which the server used clearly more CPU than idle. */
function busySpan(samples: { t: number; cpu: number }[], idleRate: number): number {
  const threshold = Math.max(0.01, idleRate * 3 + 0.005);
  let first: number | undefined;
  let last: number | undefined;
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i]!.t - samples[i - 1]!.t) / 1000;
    if (dt <= 0) continue;
    if ((samples[i]!.cpu - samples[i - 1]!.cpu) / dt > threshold) {
      first ??= samples[i - 1]!.t;
      last = samples[i]!.t;
    }
  }
  return first !== undefined && last !== undefined ? (last - first) / 1000 : 0;
}

function lastLines(text: string, count = 5): string {
  return text.trim().split("\n").slice(-count).join(" | ");
}

/** A running generator process and its JSON-lines conversation. */
export class GeneratorProcess {
  private readonly events: Record<string, unknown>[] = [];
  private wake: (() => void) | undefined;

  constructor(readonly process: Started) {
    const stdout = process.child.stdout;
    if (stdout) {
      createInterface({ input: stdout }).on("line", (line) => {
        if (!line.startsWith("{")) return;
        try {
          this.events.push(JSON.parse(line) as Record<string, unknown>);
          this.wake?.();
        } catch {
          // not ours
        }
      });
    }
  }

  async next(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.events.findIndex((fields) => fields["event"] === event);
      if (index >= 0) return this.events.splice(index, 1)[0]!;
      const exited = this.process.exited();
      if (exited !== undefined) throw new Error(`the generator ${exited} before "${event}": ${lastLines(this.process.output(), 8)}`);
      if (Date.now() > deadline) throw new Error(`the generator sent no "${event}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  go(): void {
    this.process.child.stdin?.write("go\n");
  }

  /** Waits (bounded) until the generator has exited: its sockets and connections are closed. */
  async exit(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.process.exited() === undefined && Date.now() < deadline) await sleep(20);
  }
}

/** What every generator run shares: where the server is and how to authenticate. */
export function generatorBase(server: BenchServer, transport: ClientTransport): Pick<GeneratorOptions, "serverPort" | "serverTlsPort" | "transport" | "auth" | "setupTimeoutMs"> {
  return { serverPort: server.port, ...(server.tlsPort !== undefined ? { serverTlsPort: server.tlsPort } : {}), transport, auth: server.auth, setupTimeoutMs: GENERATOR_SETUP_TIMEOUT_MS };
}

export function startGenerator(options: GeneratorOptions, core: number | undefined): GeneratorProcess {
  const [command, args] = pinned(core, process.execPath, ["--import", "tsx", "bench/gen.ts", JSON.stringify(options)]);
  return new GeneratorProcess(startProcess("generator", command, args, { stdin: true }));
}

export async function runGenerated(
  server: BenchServer,
  load: Extract<LoadSpec, { kind: "gen" }>,
  core: number | undefined,
  lossTimeoutMs: number,
  tools: ClientTools,
): Promise<Omit<Measurement, "server" | "load" | "round">> {
  if (load.transport === "tls" && server.tlsPort === undefined) return { status: "n/a", note: `${server.name} has no TLS listener` };
  const peer = await startEchoPeer(core, tools);
  const generator = startGenerator(
    {
      ...generatorBase(server, load.transport),
      mode: load.mode,
      allocations: load.allocations,
      size: load.size,
      durationSeconds: load.durationSeconds,
      window: load.window,
      rate: 0,
      peerPort: peer.port,
      lossTimeoutMs,
      concurrency: 20,
      checkpoints: [],
    },
    core,
  );
  try {
    await generator.next("hello", 30_000);
    const wholeBefore = cpuSeconds(server.pid);
    const wallStart = performance.now();
    generator.go();
    const ready = await generator.next("ready", GENERATOR_SETUP_TIMEOUT_MS + 10_000);
    const allocated = Number(ready["allocations"]);
    // Data window: schedstat (ns), so short quick runs still have a finite figure.
    const dataBefore = preciseCpuSeconds(server.pid);
    const dropsBefore = udpReceiveBufferErrors();
    generator.go();
    await generator.next("done", load.durationSeconds * 1000 + lossTimeoutMs + PHASE_TIMEOUT_MS);
    const dataCpu = preciseCpuSeconds(server.pid) - dataBefore;
    const udpReceiveBufferDrops = udpReceiveBufferErrors() - dropsBefore;
    generator.go();
    const result = (await generator.next("result", GENERATOR_SETUP_TIMEOUT_MS))["result"] as GeneratorResult;
    await generator.exit(GENERATOR_EXIT_TIMEOUT_MS);
    await sleep(TEARDOWN_SETTLE_MS);
    const cpu = cpuSeconds(server.pid) - wholeBefore;
    const wallSeconds = (performance.now() - wallStart) / 1000;
    if (allocated === 0) return { status: "failed", note: `no allocation: ${result.firstFailure ?? "?"}`, allocated };
    const note = result.allocationFailures > 0 ? `${result.allocationFailures} allocations failed (${result.firstFailure})` : undefined;
    return {
      status: result.received > 0 ? "ok" : "failed",
      ...(note !== undefined ? { note } : result.received > 0 ? {} : { note: "nothing echoed" }),
      allocated,
      sent: result.sent,
      received: result.received,
      lossPercent: result.sent > 0 ? (100 * result.lost) / result.sent : 0,
      messagesPerSecond: result.messagesPerSecond,
      cpuSeconds: cpu,
      cpuPer1kWhole: result.received > 0 ? (cpu / result.received) * 1000 : undefined,
      cpuPer1kData: result.received > 0 ? (dataCpu / result.received) * 1000 : undefined,
      rttP50Ms: result.rttMs?.p50,
      rttP99Ms: result.rttMs?.p99,
      rttMeanMs: result.rttMs?.mean,
      wallSeconds,
      udpReceiveBufferDrops,
    };
  } finally {
    await generator.process.stop();
    await peer.process.stop();
  }
}

/**
 * Waits until the server has settled (see IDLE_SETTLE_MS): at least `settleMs`, then until a whole
 * SETTLE_SAMPLE_MS under SETTLED_CPU_PERCENT of a core, at most `settleMaxMs` in all; the ms it took.
 */
async function settle(pid: number, load: Extract<LoadSpec, { kind: "alloc" }>): Promise<number> {
  const start = performance.now();
  await sleep(load.settleMs);
  while (performance.now() - start + SETTLE_SAMPLE_MS <= load.settleMaxMs) {
    if ((await idleCpuPercent(pid, SETTLE_SAMPLE_MS)) < SETTLED_CPU_PERCENT) break;
  }
  return Math.round(performance.now() - start);
}

/** The server's CPU over `windowMs` while nothing talks to it, in % of one core (schedstat, ns). */
async function idleCpuPercent(pid: number, windowMs: number): Promise<number> {
  const before = preciseCpuSeconds(pid);
  const start = performance.now();
  await sleep(windowMs);
  return ((preciseCpuSeconds(pid) - before) / ((performance.now() - start) / 1000)) * 100;
}

/**
 * Allocation lifecycles: whole-run CPU from just before the first packet until the generator (every socket
 * closed) is gone, per 1,000 complete lifecycles; and lifecycles per second.
 */
export async function runLifecycles(
  server: BenchServer,
  load: Extract<LoadSpec, { kind: "lifecycle" }>,
  core: number | undefined,
  transport: ClientTransport = "udp",
): Promise<Omit<Measurement, "server" | "load" | "round">> {
  const generator = startGenerator(
    {
      ...generatorBase(server, transport),
      mode: "lifecycle",
      allocations: load.total,
      size: 0,
      durationSeconds: 0,
      window: 0,
      rate: 0,
      peerPort: 9, // a permission and a channel to it, never any data
      lossTimeoutMs: 0,
      concurrency: load.concurrency,
      checkpoints: [],
    },
    core,
  );
  try {
    await generator.next("hello", 30_000);
    const before = cpuSeconds(server.pid);
    const wallStart = performance.now();
    generator.go();
    const result = (await generator.next("result", GENERATOR_SETUP_TIMEOUT_MS + 10_000))["result"] as GeneratorResult;
    await generator.exit(GENERATOR_EXIT_TIMEOUT_MS);
    await sleep(TEARDOWN_SETTLE_MS);
    const cpu = cpuSeconds(server.pid) - before;
    const failed = result.allocationFailures > 0 ? `${result.allocationFailures} of ${load.total} lifecycles failed (first: ${result.firstFailure ?? "?"})` : undefined;
    return {
      status: result.lifecycles > 0 ? "ok" : "failed",
      ...(failed !== undefined ? { note: failed } : {}),
      lifecycles: result.lifecycles,
      lifecyclesPerSecond: result.lifecyclesPerSecond,
      cpuSeconds: cpu,
      cpuPer1kLifecycles: result.lifecycles > 0 ? (cpu / result.lifecycles) * 1000 : undefined,
      wallSeconds: (performance.now() - wallStart) / 1000,
    };
  } finally {
    await generator.process.stop();
  }
}

/** The transport a load's clients use (the warm-up runs on the same one). */
export function loadTransport(load: LoadSpec): ClientTransport {
  return load.kind === "uclient" || load.kind === "gen" ? load.transport : "udp";
}

/**
 * The untimed warm-up every server gets before every measured load: `total` allocation lifecycles
 * over the load's transport, then (with `data`) a short run of the load itself. A relay serves for
 * days, so what an operator pays per call is its steady state; a freshly started Node process runs its
 * request path in the interpreter and compiles it during the first few hundred allocations (about
 * 0.3 CPU-s here), which a C server never pays, and compiles its data path (Node's stream machinery
 * over TCP and TLS, the relay's framing) the first time data flows: with only lifecycles as the
 * warm-up, V8's optimising compiler was 10 % of our relay's CPU inside uclient's measured TCP run
 * (`perf`). The warm-up's CPU is kept in the JSON (`warmUpCpuSeconds`) and printed, so the one-time
 * cost stays in sight.
 */
export async function warmUp(
  server: BenchServer,
  load: LoadSpec,
  total: number,
  core: number | undefined,
  data: { tools: ClientTools; lossTimeoutMs: number } | null,
): Promise<number | undefined> {
  const result = await runLifecycles(server, { id: "warm-up", kind: "lifecycle", total, concurrency: LIFECYCLE_CONCURRENCY }, core, loadTransport(load));
  let cpu = result.cpuSeconds;
  if (data === null) return cpu;
  const warmed =
    load.kind === "uclient"
      ? await runUclient(server, { ...load, messages: Math.max(DATA_WARM_UP_MIN_MESSAGES, Math.round(load.messages * DATA_WARM_UP_SHARE)) }, core, data.tools)
      : load.kind === "gen"
        ? await runGenerated(server, { ...load, durationSeconds: DATA_WARM_UP_SECONDS }, core, data.lossTimeoutMs, data.tools)
        : undefined;
  if (cpu !== undefined && warmed?.cpuSeconds !== undefined) cpu += warmed.cpuSeconds;
  return cpu;
}

/** The data warm-up: uclient with this share of the load's messages per client (at least the minimum); the generator for this long. */
const DATA_WARM_UP_SHARE = 0.1;
const DATA_WARM_UP_MIN_MESSAGES = 20;
const DATA_WARM_UP_SECONDS = 1;

export async function runAllocations(
  server: BenchServer,
  load: Extract<LoadSpec, { kind: "alloc" }>,
  core: number | undefined,
): Promise<Omit<Measurement, "server" | "load" | "round">> {
  const last = load.checkpoints[load.checkpoints.length - 1] ?? 0;
  const generator = startGenerator(
    {
      ...generatorBase(server, "udp"),
      mode: "alloc",
      allocations: last,
      size: 0,
      durationSeconds: 0,
      window: 0,
      rate: 0,
      peerPort: 9, // unused: no data in this mode
      lossTimeoutMs: 0,
      concurrency: 32,
      checkpoints: load.checkpoints,
    },
    core,
  );
  try {
    await generator.next("hello", 30_000);
    const idleSettleMs: Record<string, number> = { "0": await settle(server.pid, load) };
    const rssMb: Record<string, number> = { "0": rssBytes(server.pid) / 2 ** 20 };
    const idleCpu: Record<string, number> = { "0": await idleCpuPercent(server.pid, load.idleWindowMs) };
    const wallStart = performance.now();
    const cpuBefore = cpuSeconds(server.pid);
    generator.go();
    let allocated = 0;
    for (const target of load.checkpoints) {
      const checkpoint = await generator.next("checkpoint", GENERATOR_SETUP_TIMEOUT_MS + 10_000);
      allocated = Number(checkpoint["allocations"]);
      idleSettleMs[String(target)] = await settle(server.pid, load);
      rssMb[String(target)] = rssBytes(server.pid) / 2 ** 20;
      idleCpu[String(target)] = await idleCpuPercent(server.pid, load.idleWindowMs);
      generator.go();
    }
    const cpu = cpuSeconds(server.pid) - cpuBefore;
    const result = (await generator.next("result", 10_000))["result"] as GeneratorResult;
    const wanted = last;
    const short = allocated < wanted ? `only ${allocated} of ${wanted} allocations (${result.allocationFailures} failed: ${result.firstFailure ?? "?"})` : undefined;
    return {
      status: allocated > 0 ? "ok" : "failed",
      ...(short !== undefined ? { note: short } : {}),
      allocated,
      allocationsPerSecond: result.allocationsPerSecond,
      rssMb,
      idleCpuPercent: idleCpu,
      idleSettleMs,
      cpuSeconds: cpu,
      wallSeconds: (performance.now() - wallStart) / 1000,
    };
  } finally {
    await generator.process.stop();
  }
}
