/**
 * `npm run bench:threads` (issue 17): how our relay and coturn 4.17.1 scale from one relay thread to two
 * on this machine. See bench/README.md ("Relay threads") for what each figure means. For each of ours
 * `--relay-threads 1` and `2` and coturn 4.17.1 `--relay-threads 1` and `2`, interleaved in rounds:
 *
 *   1. search: a fresh server, one echo peer (turnutils_peer) and our generator (bench/gen.ts, stepped:
 *      lib/stepped-generator.ts) with `--allocations` UDP allocations, each on its own socket (its own
 *      4-tuple, so the kernel's SO_REUSEPORT hash spreads them over our workers); an untimed warm-up
 *      step, then fixed-rate steps up a ladder and a bisection (lib/zero-loss-search.ts) for the highest
 *      offered rate with no message lost;
 *   2. CPU: the common rate is the lowest over the servers of the highest ladder rung each held (median
 *      over its rounds); each server, freshly started again and warmed up, relays it for `--cpu-duration`
 *      seconds; CPU-seconds of its whole process tree (our primary and its workers; every coturn thread)
 *      per 1,000 echoed messages.
 *
 * Nothing is pinned: two relay threads need both cores, so the servers, the generator, the echo peer and
 * this harness share the machine's cores under the kernel's scheduler; every step records what each used.
 *
 * Flags:
 *   --quick               the smoke: 1 round, 1 s steps, 3 ladder rungs and no bisection (< 60 s for two servers)
 *   --servers a,b         any of ours-1,ours-2,coturn-1,coturn-2 (default all four; coturn ones need
 *                         bash bench/servers/build-coturn.sh)
 *   --rounds N            search and CPU rounds per server (default 3)
 *   --mode M              channel (ChannelData, default) or send (Send indications)
 *   --allocations N       UDP allocations, each its own socket (default 128; at least 64)
 *   --size B              application bytes per message (default 100)
 *   --step S              seconds per search step (default 3)
 *   --warm-up S           seconds of the untimed first step (default 2)
 *   --start-rate R        the ladder's first rung, messages/s (default 3000)
 *   --factor F            each rung is the last times F (default 1.5)
 *   --max-rate R          no step above this (default 100000)
 *   --max-steps N         steps per search, ramp and bisection (default 10)
 *   --bisect-steps N      bisection steps per search (default 3)
 *   --cpu-duration S      seconds at the common rate (default 6)
 *   --loss-timeout MS     a message not echoed within this is lost (default 1000)
 *   --time-limit S        stop everything after this many seconds (default 900; quick 60)
 *   --out FILE            JSON results (default bench/results/threads-<date>.json)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release } from "node:os";
import { dirname, join } from "node:path";
import { generatorBase, startEchoPeer, startGenerator, type GeneratorProcess } from "./lib/loads.js";
import { cpuSeconds, installCleanupHandlers, machineCpuSeconds, repoRoot, runningPids, sleep, startedProcesses, stopAll, sumCpu, threadCpuSeconds, treeCpuSeconds, udpDropsByPort, type Started } from "./lib/proc.js";
import { median } from "./lib/report.js";
import { clientTools, COTURN_4_17_BIN, missingPrerequisite, OURS_BENCH_UNAUTHENTICATED_RATE, startServer, type BenchServer, type ServerName } from "./lib/servers.js";
import type { SteppedOptions, StepResult } from "./lib/stepped-generator.js";
import type { GeneratorResult } from "./lib/generator.js";
import { bounds, highestRungHeld, nextRate, rung, type SearchPlan, type SearchStep } from "./lib/zero-loss-search.js";

type VariantId = "ours-1" | "ours-2" | "coturn-1" | "coturn-2";
interface Variant {
  id: VariantId;
  server: ServerName;
  threads: number;
  label: string;
}
const VARIANTS: readonly Variant[] = [
  { id: "ours-1", server: "ours", threads: 1, label: "ours" },
  { id: "ours-2", server: "ours", threads: 2, label: "ours" },
  { id: "coturn-1", server: "coturn-4.17", threads: 1, label: "coturn 4.17.1" },
  { id: "coturn-2", server: "coturn-4.17", threads: 2, label: "coturn 4.17.1" },
];

/** At least this many allocations (client 4-tuples), so SO_REUSEPORT has something to spread. */
const MIN_ALLOCATIONS = 64;
/**
 * The generator offered the rate if it sent at least this share of what the rate asks over its send time,
 * less OFFERED_SLACK_S of it: it paces by catching up every millisecond, so only the last wake-up (late by
 * whatever the scheduler makes it wait) is never caught up. More short than that, it could not keep up.
 */
const OFFERED_SHARE = 0.98;
const OFFERED_SLACK_S = 0.1;
/** Pause between steps, for queues left by an overloaded step to empty. */
const STEP_PAUSE_MS = 300;
/** Allocations set up at once. */
const SETUP_CONCURRENCY = 16;
const SETUP_TIMEOUT_MS = 60_000;
/** A server start, the allocations and the stops, for the time plan (measured here: 1-3 s; ours with workers the longest). */
const SESSION_OVERHEAD_S = 3;

interface Options {
  quick: boolean;
  variants: Variant[];
  rounds: number;
  mode: "channel" | "send";
  allocations: number;
  size: number;
  stepSeconds: number;
  warmUpSeconds: number;
  plan: SearchPlan;
  cpuDurationSeconds: number;
  lossTimeoutMs: number;
  timeLimitSeconds: number;
  out: string;
}

const USAGE =
  "usage: npm run bench:threads -- [--quick] [--servers ours-1,ours-2,coturn-1,coturn-2] [--rounds N] [--mode channel|send] [--allocations N] [--size B] [--step S] [--warm-up S] [--start-rate R] [--factor F] [--max-rate R] [--max-steps N] [--bisect-steps N] [--cpu-duration S] [--loss-timeout MS] [--time-limit S] [--out FILE]";

function parseArgs(argv: string[]): Options {
  const values = new Map<string, string>();
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (arg === "--quick") {
      quick = true;
      continue;
    }
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}\n${USAGE}`);
    const eq = arg.indexOf("=");
    if (eq > 0) values.set(arg.slice(2, eq), arg.slice(eq + 1));
    else {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      values.set(arg.slice(2), next);
    }
  }
  const known = ["servers", "rounds", "mode", "allocations", "size", "step", "warm-up", "start-rate", "factor", "max-rate", "max-steps", "bisect-steps", "cpu-duration", "loss-timeout", "time-limit", "out"];
  for (const key of values.keys()) if (!known.includes(key)) throw new Error(`unknown option --${key}\n${USAGE}`);
  const number = (name: string, fallback: number, min: number, max = Number.POSITIVE_INFINITY) => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got ${text}`);
    return value;
  };
  const variants = (values.get("servers")?.split(",") ?? VARIANTS.map((variant) => variant.id)).map((id) => {
    const variant = VARIANTS.find((candidate) => candidate.id === id);
    if (variant === undefined) throw new Error(`unknown server ${id}: use ${VARIANTS.map((candidate) => candidate.id).join(", ")}`);
    return variant;
  });
  const mode = values.get("mode") ?? "channel";
  if (mode !== "channel" && mode !== "send") throw new Error(`--mode must be channel or send, got ${mode}`);
  const date = new Date().toISOString().replace(/[:]/g, "-").replace(/\..*/, "");
  const factor = number("factor", quick ? 2 : 1.5, 1.05);
  return {
    quick,
    variants,
    rounds: Math.floor(number("rounds", quick ? 1 : 3, 1, 20)),
    mode,
    allocations: Math.floor(number("allocations", 128, MIN_ALLOCATIONS, 4000)),
    size: Math.floor(number("size", 100, 16, 1200)),
    stepSeconds: number("step", quick ? 1 : 3, 0.2, 60),
    warmUpSeconds: number("warm-up", quick ? 0.5 : 2, 0, 60),
    plan: {
      startRate: number("start-rate", quick ? 1000 : 3000, 10),
      factor,
      maxRate: number("max-rate", 100_000, 10),
      maxSteps: Math.floor(number("max-steps", quick ? 3 : 10, 1, 100)),
      bisectSteps: Math.floor(number("bisect-steps", quick ? 0 : 3, 0, 50)),
      tolerance: 0.05,
    },
    cpuDurationSeconds: number("cpu-duration", quick ? 1 : 6, 0.5, 120),
    lossTimeoutMs: number("loss-timeout", 1000, 10, 60_000),
    timeLimitSeconds: number("time-limit", quick ? 60 : 900, 5),
    out: values.get("out") ?? join(repoRoot, "bench", "results", `threads-${date}${quick ? "-quick" : ""}.json`),
  };
}

/** One fixed-rate step and what every party used during it. */
interface StepRecord extends StepResult {
  /** No message lost and the whole rate offered. */
  held: boolean;
  /** The generator sent less than the rate asks (OFFERED_SHARE): the load, not the server, fell short. */
  loadShort: boolean;
  echoedPerSecond: number;
  wallSeconds: number;
  /** CPU-seconds of the server's whole process tree (utime + stime, /proc/<pid>/stat) over the step. */
  serverCpuSeconds: number;
  /** The same per process of the tree (our primary and each worker; coturn is one process). */
  serverCpuByPid: Record<string, number>;
  /** CPU-seconds of the generator and the echo peer. */
  loadCpuSeconds: number;
  /** Cores in use over the step (CPU-seconds per second): the server, the load, the whole machine, everyone else. */
  serverCores: number;
  loadCores: number;
  machineBusyCores: number;
  otherCores: number;
  /** The busiest single thread of the server's tree, in cores: near 1, that thread is saturated. */
  busiestServerThreadCores: number;
  /**
   * Datagrams dropped for a full receive buffer during the step (/proc/net/udp), by whose socket: the
   * server's (its listening port and the allocations' relayed ports), the echo peer's, the generator's.
   */
  drops: { server: number; peer: number; generator: number };
  cpuPer1k: number | undefined;
  /** Where the step lost messages: what fell short (limitOf); only on a step that lost some. */
  limit?: Limit;
}

/** Why a step lost messages, from its readings (see limitOf). */
type Limit = "server" | "load" | "machine" | "unclear";

/**
 * What fell short at a step that lost messages:
 * - server: one of its threads was saturated (≥ 0.9 of a core);
 * - machine: else, every core was busy (≥ 95 %): whoever dropped or answered late was waiting for a core,
 *   not short of one of its own (the drops by party are in the JSON);
 * - server: else, its sockets dropped datagrams with cores to spare;
 * - load: else, the generator's or the peer's sockets dropped, or the generator could not offer the rate;
 * - unclear otherwise.
 */
function limitOf(step: StepRecord, cores: number): Limit {
  if (step.busiestServerThreadCores >= 0.9) return "server";
  if (step.machineBusyCores >= 0.95 * cores) return "machine";
  if (step.drops.server > 0) return "server";
  if (step.drops.generator > 0 || step.drops.peer > 0 || step.loadShort) return "load";
  return "unclear";
}

interface Session {
  variant: VariantId;
  round: number;
  purpose: "search" | "cpu";
  status: "ok" | "failed";
  note?: string;
  command: string[];
  allocations: number;
  /** Ours with workers: allocations each worker holds, by the relay port ranges its "listening" line gives. */
  allocationsPerWorker?: number[];
  warmUp?: StepRecord;
  steps: StepRecord[];
  /** Search: the highest rate held (0: none) and the lowest that was not (undefined: none within the plan). */
  zeroLossRate?: number;
  zeroLossEchoedPerSecond?: number;
  firstFailedRate?: number;
  highestRungHeld?: number;
  stoppedBy?: string;
  /** No step lost anything: the server holds at least zeroLossRate, how much more is unknown. */
  lowerBound?: boolean;
}

function cpuOfTree(pid: number): Map<number, number> {
  try {
    return treeCpuSeconds(pid);
  } catch {
    return new Map();
  }
}

function cpuOf(process: Started): number {
  try {
    return cpuSeconds(process.pid);
  } catch {
    return 0;
  }
}

/** Where ours's "listening" line puts each worker's relay ports: [min, max] per worker. */
function workerPortRanges(server: BenchServer): [number, number][] | undefined {
  const line = server
    .output()
    .split("\n")
    .find((text) => text.includes('"event":"listening"'));
  if (line === undefined) return undefined;
  try {
    const parsed = JSON.parse(line) as { workers?: { relayPorts: string }[] };
    return parsed.workers?.map((worker) => worker.relayPorts.split("-").map(Number) as [number, number]);
  } catch {
    return undefined;
  }
}

/** The local ports of each party, to count socket drops by whose they were. */
interface Ports {
  server: Set<number>;
  peer: number;
  generator: Set<number>;
}

function dropsOf(before: Map<number, number>, after: Map<number, number>, ports: Ports): StepRecord["drops"] {
  const drops = { server: 0, peer: 0, generator: 0 };
  for (const [port, count] of after) {
    const delta = count - (before.get(port) ?? 0);
    if (delta <= 0) continue;
    if (ports.server.has(port)) drops.server += delta;
    else if (port === ports.peer) drops.peer += delta;
    else if (ports.generator.has(port)) drops.generator += delta;
  }
  return drops;
}

class Running {
  constructor(
    readonly server: BenchServer,
    readonly peer: Started,
    readonly generator: GeneratorProcess,
    readonly options: Options,
    readonly ports: Ports,
  ) {}

  async step(rate: number, seconds: number): Promise<StepRecord> {
    const serverBefore = cpuOfTree(this.server.pid);
    const threadsBefore = threadCpuSeconds(serverBefore.keys());
    const dropsBefore = udpDropsByPort();
    const loadBefore = cpuOf(this.generator.process) + cpuOf(this.peer);
    const machineBefore = machineCpuSeconds();
    const harnessBefore = process.cpuUsage();
    const wallStart = performance.now();
    this.generator.process.child.stdin?.write(`step ${rate} ${seconds}\n`);
    const result = (await this.generator.next("step", seconds * 1000 + this.options.lossTimeoutMs + 30_000)) as unknown as StepResult;
    const wallSeconds = (performance.now() - wallStart) / 1000;
    const serverAfter = cpuOfTree(this.server.pid);
    const threadsAfter = threadCpuSeconds(serverAfter.keys());
    const drops = dropsOf(dropsBefore, udpDropsByPort(), this.ports);
    let busiestThread = 0;
    for (const [tid, after] of threadsAfter) busiestThread = Math.max(busiestThread, after - (threadsBefore.get(tid) ?? after));
    const loadCpuSeconds = cpuOf(this.generator.process) + cpuOf(this.peer) - loadBefore;
    const machineAfter = machineCpuSeconds();
    const harness = process.cpuUsage(harnessBefore);
    const serverCpuByPid: Record<string, number> = {};
    for (const [pid, after] of serverAfter) serverCpuByPid[String(pid)] = after - (serverBefore.get(pid) ?? 0);
    const serverCpuSeconds = sumCpu(serverAfter) - sumCpu(serverBefore);
    const machineBusyCores = (machineAfter.busy - machineBefore.busy) / wallSeconds;
    const serverCores = serverCpuSeconds / wallSeconds;
    const loadCores = loadCpuSeconds / wallSeconds;
    const harnessCores = (harness.user + harness.system) / 1e6 / wallSeconds;
    const loadShort = result.sent < rate * (OFFERED_SHARE * result.sendSeconds - OFFERED_SLACK_S);
    const record: StepRecord = {
      ...result,
      held: result.lost === 0 && !loadShort && result.sent > 0,
      loadShort,
      echoedPerSecond: result.sendSeconds > 0 ? result.received / result.sendSeconds : 0,
      wallSeconds,
      serverCpuSeconds,
      serverCpuByPid,
      loadCpuSeconds,
      serverCores,
      loadCores,
      machineBusyCores,
      otherCores: Math.max(0, machineBusyCores - serverCores - loadCores - harnessCores),
      busiestServerThreadCores: busiestThread / wallSeconds,
      drops,
      cpuPer1k: result.received > 0 ? (serverCpuSeconds / result.received) * 1000 : undefined,
    };
    if (result.lost > 0) record.limit = limitOf(record, cpus().length);
    return record;
  }
}

/** Starts the server, the echo peer and the stepped generator, sets up the allocations, runs `body`, stops all three. */
async function session(variant: Variant, round: number, purpose: Session["purpose"], options: Options, body: (running: Running, record: Session) => Promise<void>): Promise<Session> {
  const record: Session = { variant: variant.id, round, purpose, status: "ok", command: [], allocations: 0, steps: [] };
  let server: BenchServer | undefined;
  let peer: Started | undefined;
  let generator: GeneratorProcess | undefined;
  try {
    server = await startServer(variant.server, { core: undefined, relayThreads: variant.threads });
    record.command = server.command;
    const echo = await startEchoPeer(undefined, clientTools());
    peer = echo.process;
    const generatorOptions: SteppedOptions = {
      ...generatorBase(server, "udp"),
      setupTimeoutMs: SETUP_TIMEOUT_MS,
      stepped: true,
      mode: options.mode,
      allocations: options.allocations,
      size: options.size,
      durationSeconds: 0,
      window: 0,
      rate: 0,
      peerPort: echo.port,
      lossTimeoutMs: options.lossTimeoutMs,
      concurrency: SETUP_CONCURRENCY,
      checkpoints: [],
    };
    generator = startGenerator(generatorOptions, undefined);
    await generator.next("hello", 30_000);
    generator.go();
    const ready = await generator.next("ready", SETUP_TIMEOUT_MS + 10_000);
    record.allocations = Number(ready["allocations"]);
    const ports = Array.isArray(ready["relayedPorts"]) ? (ready["relayedPorts"] as number[]) : [];
    const localPorts = Array.isArray(ready["localPorts"]) ? (ready["localPorts"] as number[]) : [];
    const ranges = variant.server === "ours" && variant.threads > 1 ? workerPortRanges(server) : undefined;
    if (ranges !== undefined) record.allocationsPerWorker = ranges.map(([min, max]) => ports.filter((port) => port >= min && port <= max).length);
    if (record.allocations < options.allocations) {
      record.status = "failed";
      record.note = `only ${record.allocations} of ${options.allocations} allocations`;
      return record;
    }
    await body(new Running(server, peer, generator, options, { server: new Set([server.port, ...ports]), peer: echo.port, generator: new Set(localPorts) }), record);
    generator.process.child.stdin?.write("stop\n");
    (await generator.next("result", 30_000)) as unknown as { result: GeneratorResult };
    await generator.exit(10_000);
  } catch (error) {
    record.status = "failed";
    record.note = (error as Error).message.split("\n")[0];
  } finally {
    await generator?.process.stop();
    await peer?.stop();
    await server?.stop();
  }
  return record;
}

function brief(step: StepRecord): string {
  // Ours with workers: the cores of the primary and of each worker.
  const workers = Object.values(step.serverCpuByPid).length > 1 ? ` [${Object.values(step.serverCpuByPid).map((v) => (v / step.wallSeconds).toFixed(2)).join("+")}]` : "";
  return (
    `${step.rate} msg/s offered: ${step.echoedPerSecond.toFixed(0)} echoed/s, lost ${step.lost}${step.loadShort ? " (the generator fell short)" : ""}, ` +
    `server ${step.serverCores.toFixed(2)} cores${workers} (busiest thread ${step.busiestServerThreadCores.toFixed(2)}), load ${step.loadCores.toFixed(2)}, machine ${step.machineBusyCores.toFixed(2)} (others ${step.otherCores.toFixed(2)})` +
    `${step.drops.server + step.drops.peer + step.drops.generator > 0 ? `, socket drops server ${step.drops.server} peer ${step.drops.peer} generator ${step.drops.generator}` : ""}` +
    ` -> ${step.held ? "held" : `NOT held${step.limit !== undefined ? ` (limit: ${step.limit})` : ""}`}`
  );
}

async function search(variant: Variant, round: number, options: Options, deadline: number, log: (line: string) => void): Promise<Session> {
  return session(variant, round, "search", options, async (running, record) => {
    if (options.warmUpSeconds > 0) record.warmUp = await running.step(options.plan.startRate, options.warmUpSeconds);
    const steps: SearchStep[] = [];
    for (;;) {
      const rate = nextRate(options.plan, steps);
      if (rate === undefined) {
        record.stoppedBy = steps.some((step) => !step.held)
          ? "search done"
          : steps.length >= options.plan.maxSteps
            ? `every step held up to --max-steps ${options.plan.maxSteps}`
            : `every step held up to --max-rate ${options.plan.maxRate}`;
        break;
      }
      if (Date.now() + stepSecondsTypical(options.stepSeconds) * 1000 > deadline) {
        record.stoppedBy = "time limit";
        break;
      }
      await sleep(STEP_PAUSE_MS);
      let step = await running.step(rate, options.stepSeconds);
      record.steps.push(step);
      log(`    ${brief(step)}`);
      if (step.loadShort && step.lost === 0) {
        // The generator could not offer the rate (the machine is shared): not the server's failure. Once more.
        await sleep(STEP_PAUSE_MS);
        step = await running.step(rate, options.stepSeconds);
        record.steps.push(step);
        log(`    again: ${brief(step)}`);
        if (step.loadShort && step.lost === 0) {
          record.stoppedBy = `the generator could not offer ${rate} msg/s twice (the load, not the server, is the limit)`;
          break;
        }
      }
      steps.push({ rate, held: step.held });
    }
    if (steps.length === 0) return; // no step in its time: not measured
    const { held, failed } = bounds(steps);
    record.zeroLossRate = held;
    record.zeroLossEchoedPerSecond = record.steps.find((step) => step.held && step.rate === held)?.echoedPerSecond ?? 0;
    if (Number.isFinite(failed)) record.firstFailedRate = failed;
    else record.lowerBound = true;
    record.highestRungHeld = highestRungHeld(options.plan, steps);
  });
}

async function cpuAtRate(variant: Variant, round: number, rate: number, options: Options, log: (line: string) => void): Promise<Session> {
  return session(variant, round, "cpu", options, async (running, record) => {
    // Warmed at the rate itself, so every worker has compiled its hot path for the traffic it measures.
    if (options.warmUpSeconds > 0) record.warmUp = await running.step(rate, options.warmUpSeconds);
    await sleep(STEP_PAUSE_MS);
    const step = await running.step(rate, options.cpuDurationSeconds);
    record.steps.push(step);
    log(`    ${brief(step)}; CPU/1k ${step.cpuPer1k?.toFixed(4) ?? "-"} s`);
  });
}

interface SummaryRow {
  variant: VariantId;
  server: string;
  threads: number;
  /** Median over the rounds of the highest rate held (messages/s offered), and of what was echoed at it. */
  zeroLossRate: number | undefined;
  zeroLossEchoedPerSecond: number | undefined;
  zeroLossRates: number[];
  /** Some round found no rate that lost messages (ran out of steps, time or ladder): the figure is a floor. */
  lowerBound: boolean;
  /** Median over the rounds of the CPU-seconds per 1,000 echoed messages at the common rate. */
  cpuPer1k: number | undefined;
  cpuPer1ks: number[];
  /** Whether each CPU round's step held (the median takes only those). */
  cpuHeld: boolean[];
  /** From the search steps that held: CPU-s per 1k msgs by offered rate, median over rounds. */
  cpuPer1kByRate: Record<string, number>;
  /** Messages lost at the common rate, summed over the rounds. */
  lostAtCommonRate: number;
  /** At the highest step held (median over rounds): cores the server used, the load used, the whole machine. */
  serverCoresAtZeroLoss: number | undefined;
  loadCoresAtZeroLoss: number | undefined;
  machineCoresAtZeroLoss: number | undefined;
  busiestThreadAtZeroLoss: number | undefined;
  allocationsPerWorker: number[][];
  /** Per round, what fell short at the lowest rate that lost messages (limitOf), or "-" when none did. */
  limits: string[];
}

/** CPU-s per 1k messages of the search steps that held, by rate, median over the rounds. */
function cpuByRate(searches: Session[]): Record<string, number> {
  const byRate = new Map<number, number[]>();
  for (const step of searches.flatMap((s) => s.steps)) {
    if (!step.held || step.cpuPer1k === undefined) continue;
    byRate.set(step.rate, [...(byRate.get(step.rate) ?? []), step.cpuPer1k]);
  }
  const out: Record<string, number> = {};
  for (const [rate, values] of [...byRate].sort((a, b) => a[0] - b[0])) out[String(rate)] = median(values)!;
  return out;
}

function summarize(variant: Variant, sessions: Session[]): SummaryRow {
  const searches = sessions.filter((s) => s.variant === variant.id && s.purpose === "search" && s.status === "ok");
  const cpu = sessions.filter((s) => s.variant === variant.id && s.purpose === "cpu" && s.status === "ok");
  const heldSteps = searches.flatMap((s) => s.steps.filter((step) => step.held && step.rate === s.zeroLossRate));
  const finite = (values: (number | undefined)[]) => values.filter((value): value is number => value !== undefined && Number.isFinite(value));
  return {
    variant: variant.id,
    server: variant.label,
    threads: variant.threads,
    zeroLossRate: median(finite(searches.map((s) => s.zeroLossRate))),
    zeroLossEchoedPerSecond: median(finite(searches.map((s) => s.zeroLossEchoedPerSecond))),
    zeroLossRates: finite(searches.map((s) => s.zeroLossRate)),
    lowerBound: searches.some((s) => s.lowerBound === true),
    limits: searches.map((s) => s.steps.find((step) => step.rate === s.firstFailedRate && step.limit !== undefined)?.limit ?? "-"),
    // Only steps that held: where the generator fell short its bursts change the server's batching.
    cpuPer1k: median(finite(cpu.filter((s) => s.steps[0]?.held === true).map((s) => s.steps[0]?.cpuPer1k))),
    cpuPer1ks: finite(cpu.map((s) => s.steps[0]?.cpuPer1k)),
    cpuHeld: cpu.map((s) => s.steps[0]?.held === true),
    cpuPer1kByRate: cpuByRate(searches),
    lostAtCommonRate: cpu.reduce((sum, s) => sum + (s.steps[0]?.lost ?? 0), 0),
    serverCoresAtZeroLoss: median(heldSteps.map((step) => step.serverCores)),
    loadCoresAtZeroLoss: median(heldSteps.map((step) => step.loadCores)),
    machineCoresAtZeroLoss: median(heldSteps.map((step) => step.machineBusyCores)),
    busiestThreadAtZeroLoss: median(heldSteps.map((step) => step.busiestServerThreadCores)),
    allocationsPerWorker: sessions.filter((s) => s.variant === variant.id && s.allocationsPerWorker !== undefined).map((s) => s.allocationsPerWorker!),
  };
}

const fixed = (value: number | undefined, digits: number) => (value === undefined ? "-" : value.toFixed(digits));

function table(rows: SummaryRow[], commonRate: number | undefined): string {
  const lines = [
    `| server | threads | zero-loss msg/s (offered; each round) | echoed msg/s at it | server / load / machine cores at it | limit at the first loss (each round) | CPU-s per 1k msgs at ${commonRate ?? "-"} msg/s (each round) | lost at it |`,
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.server} | ${row.threads} | ${row.lowerBound ? "≥ " : ""}${fixed(row.zeroLossRate, 0)} (${row.zeroLossRates.join(", ") || "-"}) | ${fixed(row.zeroLossEchoedPerSecond, 0)} | ${fixed(row.serverCoresAtZeroLoss, 2)} / ${fixed(row.loadCoresAtZeroLoss, 2)} / ${fixed(row.machineCoresAtZeroLoss, 2)} | ${row.limits.join(", ") || "-"} | ${fixed(row.cpuPer1k, 4)} (${row.cpuPer1ks.map((v, i) => `${v.toFixed(4)}${row.cpuHeld[i] ? "" : "*"}`).join(", ") || "-"}) | ${row.lostAtCommonRate} |`,
    );
  }
  if (rows.some((row) => row.cpuHeld.some((held) => !held))) lines.push("", "\\* that round's step did not hold (a loss, or the generator fell short): left out of the median");
  return lines.join("\n");
}

/** CPU-s per 1k messages by offered rate (the ladder's rungs every row has), from the search steps that held. */
function rateTable(rows: SummaryRow[], plan: SearchPlan): string {
  const rungs: number[] = [];
  for (let index = 0; index < plan.maxSteps && rung(plan, index) <= plan.maxRate; index++) rungs.push(rung(plan, index));
  const shown = rungs.filter((rate) => rows.filter((row) => row.cpuPer1kByRate[String(rate)] !== undefined).length >= Math.min(2, rows.length));
  if (shown.length === 0) return "(no ladder rate held by two servers)";
  return [
    `| server | threads | ${shown.map((rate) => `${rate} msg/s`).join(" | ")} |`,
    `|---|---|${shown.map(() => "---|").join("")}`,
    ...rows.map((row) => `| ${row.server} | ${row.threads} | ${shown.map((rate) => fixed(row.cpuPer1kByRate[String(rate)], 4)).join(" | ")} |`),
  ].join("\n");
}

interface Target {
  what: string;
  value: number | undefined;
  target: string;
  met: boolean | undefined;
}

function machine(): Record<string, unknown> {
  let coturn417: string | undefined;
  try {
    coturn417 = execFileSync(join(COTURN_4_17_BIN, "turnserver"), ["--version"], { encoding: "utf8", timeout: 5_000 }).trim().split("\n").pop();
  } catch {
    coturn417 = undefined;
  }
  let top: string | undefined;
  try {
    top = execFileSync("top", ["-bn1", "-w", "160"], { encoding: "utf8", timeout: 5_000 }).split("\n").slice(0, 16).join("\n");
  } catch {
    top = undefined;
  }
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    availableParallelism: availableParallelism(),
    kernel: release(),
    node: process.version,
    coturn417,
    loadAverageAtStart: loadavg().map((value) => Number(value.toFixed(2))),
    topAtStart: top,
  };
}

/**
 * Seconds one step takes at most: its send time, the wait for the last echoes (at most the loss timeout,
 * only when messages are lost), the pause before it.
 */
function stepSecondsAtMost(options: Options, seconds: number): number {
  return seconds + options.lossTimeoutMs / 1000 + STEP_PAUSE_MS / 1000;
}

/** Seconds a step takes when nothing is lost: its send time, the pause before it, the last echoes. */
function stepSecondsTypical(seconds: number): number {
  return seconds + STEP_PAUSE_MS / 1000 + 0.2;
}

/** Seconds a CPU session takes when nothing is lost (the time plan reserves this much for each). */
function cpuSessionSeconds(options: Options): number {
  return SESSION_OVERHEAD_S + stepSecondsTypical(options.warmUpSeconds) + stepSecondsTypical(options.cpuDurationSeconds);
}

/** The worst case of the whole run, printed at the start (the time limit bounds it either way). */
function estimateSeconds(options: Options): number {
  const searchSession = SESSION_OVERHEAD_S + stepSecondsAtMost(options, options.warmUpSeconds) + options.plan.maxSteps * stepSecondsAtMost(options, options.stepSeconds);
  const cpuSession = SESSION_OVERHEAD_S + stepSecondsAtMost(options, options.warmUpSeconds) + stepSecondsAtMost(options, options.cpuDurationSeconds);
  return options.variants.length * options.rounds * (searchSession + cpuSession);
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  const startedAt = Date.now();
  const hardDeadline = startedAt + options.timeLimitSeconds * 1000;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench:threads: over the time limit of ${options.timeLimitSeconds} s, stopping everything\n`);
    void stopAll().finally(() => process.exit(124));
  }, options.timeLimitSeconds * 1000);
  watchdog.unref();
  for (const variant of options.variants) {
    const missing = missingPrerequisite(variant.server);
    if (missing !== undefined) throw new Error(`${variant.id}: ${missing}`);
  }
  const estimate = estimateSeconds(options);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const info = machine();
  const cores = Number(info["cores"]);
  const coreSharing = `nothing pinned: the server's ${options.variants.some((v) => v.threads > 1) ? "processes and threads" : "process"}, the generator (one Node process), turnutils_peer and this harness share the machine's ${cores} cores under the kernel's scheduler (two relay threads need both cores, so the load cannot have one of its own); each step records the cores each used`;
  log(
    `bench:threads: ${options.variants.map((v) => v.id).join(", ")} × ${options.rounds} rounds, ${options.allocations} UDP allocations (${options.mode === "channel" ? "ChannelData" : "Send indications"}, ${options.size} B); worst case ~${Math.round(estimate)} s of a ${options.timeLimitSeconds} s limit; load average ${String(info["loadAverageAtStart"])}`,
  );
  log(`bench:threads: ${coreSharing}`);
  // The CPU rounds keep their time; the searches share the rest equally (each search stops stepping at
  // its share's end, so a slow server cannot take the others' steps).
  const cpuReserveMs = options.variants.length * options.rounds * cpuSessionSeconds(options) * 1000;
  const searchEnd = hardDeadline - cpuReserveMs - 2_000;
  let searchesLeft = options.variants.length * options.rounds;

  const sessions: Session[] = [];
  const rotate = <T>(list: readonly T[], by: number) => list.map((_, i) => list[(i + by) % list.length]!);
  for (let round = 1; round <= options.rounds; round++) {
    for (const variant of rotate(options.variants, round - 1)) {
      log(`  [${((Date.now() - startedAt) / 1000).toFixed(0)} s] search ${variant.id} round ${round}`);
      const deadline = Date.now() + Math.max(0, searchEnd - Date.now()) / searchesLeft--;
      const record = await search(variant, round, options, deadline, log);
      sessions.push(record);
      const perWorker = record.allocationsPerWorker !== undefined ? `; allocations per worker ${record.allocationsPerWorker.join("/")}` : "";
      log(
        record.status === "ok"
          ? `    -> zero loss up to ${record.zeroLossRate} msg/s offered (${record.zeroLossEchoedPerSecond?.toFixed(0)} echoed/s)${record.firstFailedRate !== undefined ? `, loss at ${record.firstFailedRate}` : ""}; ${record.stoppedBy}${perWorker}`
          : `    -> failed: ${record.note}`,
      );
    }
  }
  // The common rate: the lowest over the servers of the highest ladder rung each held (median over its
  // rounds, so one round disturbed by other work on the machine does not set it alone).
  const searches = sessions.filter((s) => s.purpose === "search");
  const perServer = options.variants.map((variant) => {
    const held = searches.filter((s) => s.variant === variant.id && s.status === "ok" && s.highestRungHeld !== undefined).map((s) => s.highestRungHeld!);
    return held.length > 0 ? Math.floor(median(held)!) : -1;
  });
  const commonRung = perServer.length > 0 ? Math.min(...perServer) : -1;
  const commonRate = commonRung >= 0 ? rung(options.plan, commonRung) : undefined;
  if (commonRate === undefined) log("bench:threads: no ladder rate was held by every search: no CPU rounds");
  else {
    for (let round = 1; round <= options.rounds; round++) {
      for (const variant of rotate(options.variants, round - 1)) {
        if (Date.now() + cpuSessionSeconds(options) * 1000 > hardDeadline - 1_000) {
          log(`  CPU ${variant.id} round ${round}: skipped, over the time limit`);
          continue;
        }
        log(`  [${((Date.now() - startedAt) / 1000).toFixed(0)} s] CPU ${variant.id} round ${round} at ${commonRate} msg/s`);
        const record = await cpuAtRate(variant, round, commonRate, options, log);
        if (record.status !== "ok") log(`    -> failed: ${record.note}`);
        sessions.push(record);
      }
    }
  }
  await stopAll();

  const rows = options.variants.map((variant) => summarize(variant, sessions));
  const row = (id: VariantId) => rows.find((r) => r.variant === id);
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  const oursScaling = ratio(row("ours-2")?.zeroLossRate, row("ours-1")?.zeroLossRate);
  const coturnScaling = ratio(row("coturn-2")?.zeroLossRate, row("coturn-1")?.zeroLossRate);
  const cpuRatio = ratio(row("ours-2")?.cpuPer1k, row("ours-1")?.cpuPer1k);
  const targets: Target[] = [
    { what: "(a) ours CPU/1k msgs, 2 threads ÷ 1 thread", value: cpuRatio, target: "≤ 1.10", met: cpuRatio === undefined ? undefined : cpuRatio <= 1.1 },
    {
      what: "(b) ours scaling (2 ÷ 1 threads, zero-loss msg/s) ÷ coturn's",
      value: ratio(oursScaling, coturnScaling),
      target: "≥ 1.0",
      met: oursScaling === undefined || coturnScaling === undefined ? undefined : oursScaling >= coturnScaling,
    },
  ];
  const describeLimit = (r: SummaryRow) =>
    `${r.server} ${r.threads} thread${r.threads > 1 ? "s" : ""}: busiest server thread ${fixed(r.busiestThreadAtZeroLoss, 2)} of a core, server ${fixed(r.serverCoresAtZeroLoss, 2)}, load ${fixed(r.loadCoresAtZeroLoss, 2)}, machine ${fixed(r.machineCoresAtZeroLoss, 2)} of ${cores} cores; at the first loss: ${r.limits.join(", ")}`;
  const oneThread = rows.filter((r) => r.threads === 1 && r.busiestThreadAtZeroLoss !== undefined);
  // Rows that found a loss (not a floor) while their one relay thread was still far from busy.
  const unsaturated = oneThread.filter((r) => r.busiestThreadAtZeroLoss! < 0.9 && !r.lowerBound);
  const limits = [
    `the machine has ${cores} cores (${String(info["cpu"])}), shared with other work (load average ${String(info["loadAverageAtStart"])} at start, ${loadavg().map((v) => v.toFixed(2)).join(",")} at end)`,
    coreSharing,
    `at the highest rate held (medians): ${rows.map(describeLimit).join("; ")}`,
    unsaturated.length > 0
      ? `with one relay thread, ${unsaturated.map((r) => r.server).join(" and ")} lost messages before that thread was busy (busiest thread < 0.9 of a core): this machine cannot load one relay thread fully (the load costs more CPU per message than the relay, and both share the ${cores} cores with other work), so a second thread has no work to take over and the scaling measured here is the machine's limit, not the relay's; CPU per 1k messages is the figure that compares the servers here`
      : oneThread.some((r) => r.lowerBound)
        ? "a row marked ≥ lost nothing up to its last step (the search ran out of steps, ladder or time): its zero-loss figure is a floor, and so is any scaling computed from it"
        : "with two relay threads the server competes with its own load for the same cores: the scaling measured here is a floor for what a host with cores to spare sees",
  ];
  const date = new Date().toISOString();
  const summary = {
    date,
    machine: { ...info, loadAverageAtEnd: loadavg().map((value) => Number(value.toFixed(2))) },
    options,
    notes: [
      ...limits,
      `ours: the production bundle, --udp-io=native, --unauthenticated-rate=${OURS_BENCH_UNAUTHENTICATED_RATE}, quotas lifted (as npm run bench), plus --relay-threads N; coturn 4.17.1: its defaults as npm run bench's coturn-4.17 row, plus --relay-threads N`,
      "a step holds when no message is lost (not echoed within the loss timeout) and the generator offered at least 98 % of the rate",
      "CPU: utime + stime from /proc/<pid>/stat of every process of the server's tree (ours: the primary and its workers; coturn: one process, all threads), over the step",
    ],
    rows,
    commonRate,
    scaling: { ours: oursScaling, coturn: coturnScaling },
    targets,
    sessions,
    processes: startedProcesses(),
  };
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(summary, null, 2)}\n`);

  const sizing = rows
    .filter((r) => r.cpuPer1k !== undefined && r.cpuPer1k > 0)
    .map((r) => `${r.server} ${r.threads} thread${r.threads > 1 ? "s" : ""}: ~${Math.round(1000 / r.cpuPer1k!)} echoed msg/s per busy core`)
    .join("; ");
  const out = [
    "",
    `## relaykit bench:threads, ${date} (${String(info["cpu"])}, ${cores} cores, Node ${process.version}, ${String(info["coturn417"] ?? "coturn 4.17.1 ?")}; ${options.allocations} UDP allocations, ${options.mode === "channel" ? "ChannelData" : "Send indications"}, ${options.size} B; ${options.rounds} round${options.rounds > 1 ? "s" : ""}, medians)`,
    "",
    table(rows, commonRate),
    "",
    `Scaling, zero-loss msg/s 2 threads ÷ 1 thread: ours ${fixed(oursScaling, 2)}, coturn 4.17.1 ${fixed(coturnScaling, 2)}`,
    "",
    "| target | value | wanted | met |",
    "|---|---|---|---|",
    ...targets.map((t) => `| ${t.what} | ${fixed(t.value, 2)} | ${t.target} | ${t.met === undefined ? "-" : t.met ? "yes" : "NO"} |`),
    "",
    `Targets: ${targets.filter((t) => t.met === true).length} of ${targets.length} met${targets.some((t) => t.met === undefined) ? " (some not measured)" : ""}`,
    "",
    `CPU-s per 1k msgs by offered rate (search steps that held, median over rounds; ${options.stepSeconds} s steps, so coarser than the table${"'"}s):`,
    "",
    rateTable(rows, options.plan),
    "",
    ...(sizing !== "" ? [`Sizing (1000 ÷ CPU-s per 1k at ${commonRate} msg/s): ${sizing}`, ""] : []),
    ...summary.notes.map((note) => `- ${note}`),
    "",
    `JSON: ${options.out}`,
    "",
  ];
  process.stdout.write(out.join("\n"));
  const left = runningPids();
  if (left.length > 0) {
    process.stderr.write(`bench:threads: processes still registered after the run: ${left.join(", ")}\n`);
    return 1;
  }
  return 0;
}

main()
  .then((code) => process.exit(code))
  .catch(async (error: unknown) => {
    process.stderr.write(`bench:threads: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopAll();
    process.exit(1);
  });
