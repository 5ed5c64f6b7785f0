/**
 * Processes the benchmark starts, and what it reads about them from /proc.
 *
 * Every long-lived process is spawned detached (it leads a process group of its own), optionally
 * pinned to one core with `taskset -c N` (taskset execs the command, so the PID we hold is the
 * server's own), and registered here; `stopAll` ends every registered group, and is run on exit,
 * on Ctrl-C and on failure. Every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { freeTcpAndUdpPort } from "../../test/node/processes.js";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const STOP_TIMEOUT_MS = 5_000;
/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat (100 on every Linux we run on). */
const CLOCK_TICKS_PER_SECOND = 100;

/** Which core the server and the load get, when the machine has two or more; undefined: no pinning. */
export interface Pinning {
  server: number | undefined;
  load: number | undefined;
}

export function pinning(disabled = false): Pinning {
  if (disabled || availableParallelism() < 2 || !hasTaskset()) return { server: undefined, load: undefined };
  return { server: 0, load: 1 };
}

function hasTaskset(): boolean {
  return onPath("taskset");
}

/** `command args` prefixed with `taskset -c core` when a core is given. */
export function pinned(core: number | undefined, command: string, args: readonly string[]): [string, string[]] {
  return core === undefined ? [command, [...args]] : ["taskset", ["-c", String(core), command, ...args]];
}

export interface Started {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything it wrote to stdout and stderr (the last 1 MB). */
  output(): string;
  /** Set once it exited: how. */
  exited(): string | undefined;
  stop(): Promise<void>;
}

const running = new Set<Started>();
const everStarted: { name: string; pid: number; command: string }[] = [];
const OUTPUT_KEEP = 1 << 20;

/** Spawns `command` detached in its own process group, registered for `stopAll`. */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: {
    env?: Record<string, string>;
    cwd?: string;
    stdin?: boolean;
    /** How long stop() waits after SIGTERM before SIGKILL (default 5 s). */
    stopGraceMs?: number;
  } = {},
): Started {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    detached: true,
    stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let output = "";
  let exited: string | undefined;
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > OUTPUT_KEEP) output = output.slice(-OUTPUT_KEEP);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("exit", (code, signal) => (exited = `exited with code ${code}, signal ${signal}`));
  child.once("error", (error) => (exited = `could not start: ${error.message}`));
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT comes as an 'error' event, pid stays undefined)
    const failed: Started = { name, child, pid: -1, output: () => output, exited: () => exited ?? "could not start", stop: async () => {} };
    return failed;
  }
  const pid = child.pid;
  everStarted.push({ name, pid, command: [command, ...args].join(" ").slice(0, 200) });
  const started: Started = {
    name,
    child,
    pid,
    output: () => output,
    exited: () => exited,
    stop: async () => {
      running.delete(started);
      await stopGroup(pid, options.stopGraceMs ?? STOP_TIMEOUT_MS);
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.stdin?.destroy();
    },
  };
  running.add(started);
  return started;
}

/** Sends `signal` to the process group led by `pid`; false when no process of the group is left. */
export function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

async function stopGroup(pid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pid, "SIGTERM")) return;
  const deadline = Date.now() + graceMs;
  while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(25);
  signalGroup(pid, "SIGKILL");
  const killDeadline = Date.now() + STOP_TIMEOUT_MS;
  while (signalGroup(pid, 0) && Date.now() < killDeadline) await sleep(25);
}

/** Stops every process group still registered. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((started) => started.stop()));
}

/** PIDs of the groups still registered (for the smoke test and the final check). */
export function runningPids(): number[] {
  return [...running].map((started) => started.pid);
}

/** Every process started so far (for the JSON, so a test can check that none is left). */
export function startedProcesses(): { name: string; pid: number; command: string }[] {
  return [...everStarted];
}

/** Synchronous last resort (process 'exit' handlers cannot wait): SIGKILL every registered group. */
export function killAllNow(): void {
  for (const started of running) signalGroup(started.pid, "SIGKILL");
  running.clear();
}

let handlersInstalled = false;
/** Ends every started process on Ctrl-C, SIGTERM, an uncaught error, or exit. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${signal}, stopping every process it started\n`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", killAllNow);
}

/** The CPU seconds (user + system, all threads) the process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * The CPU time in seconds of every thread of `pid`, from /proc/<pid>/task/<tid>/schedstat (nanoseconds,
 * so fine-grained enough to sample every 50 ms; stat's ticks are 10 ms).
 */
export function preciseCpuSeconds(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e9;
    } catch {
      // the thread ended between listing and reading
    }
  }
  return total;
}

/** Resident memory in bytes (VmRSS in /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * A port free on 127.0.0.1 for both TCP and UDP right now, picked where the suites pick theirs
 * (test/node/processes.ts FREE_PORT_BAND): clear of the relay-port range the bench gives its servers,
 * and of the ephemeral range, since bench-smoke runs the benches beside the other test files.
 */
export const freePort = freeTcpAndUdpPort;

/** Whether `command` is an executable on PATH. */
export function onPath(command: string): boolean {
  return (process.env["PATH"] ?? "").split(":").some((dir) => {
    try {
      return readdirSync(dir).includes(command);
    } catch {
      return false;
    }
  });
}

/** Polls `url` until it answers with a status `accept` takes, failing with `started`'s output if it exits or `timeoutMs` passes. */
export async function waitForHttp(url: string, started: Started, accept: (status: number) => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exited = started.exited();
    if (exited !== undefined) throw new Error(`${started.name} ${exited}:\n${started.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${started.name} did not answer ${url} within ${timeoutMs} ms:\n${started.output().slice(-3000)}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (accept(response.status)) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
}

/** The process `pid` and every descendant of it (children, grandchildren, ...), from /proc/<n>/stat's ppid. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // After the name in parentheses: state (index 0), ppid (index 1).
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid);
      if (list === undefined) children.set(ppid, [Number(entry)]);
      else list.push(Number(entry));
    } catch {
      // the process ended between listing and reading
    }
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && tree.length < 10_000) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/**
 * CPU seconds (utime + stime of every thread, /proc/<pid>/stat) of `pid` and every live descendant, each
 * process by its PID. A descendant that ended during a window takes its CPU with it (its parent's cutime
 * counts it only once reaped), so a window is only whole when the tree kept its processes.
 */
export function treeCpuSeconds(pid: number): Map<number, number> {
  const each = new Map<number, number>();
  for (const member of processTree(pid)) {
    try {
      each.set(member, cpuSeconds(member));
    } catch {
      // ended between listing and reading
    }
  }
  return each;
}

/** The sum of a treeCpuSeconds reading. */
export function sumCpu(reading: Map<number, number>): number {
  let total = 0;
  for (const value of reading.values()) total += value;
  return total;
}

/** Busy and total CPU time of the whole machine so far, in seconds summed over every core (/proc/stat's cpu line). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((l) => l.startsWith("cpu "));
  if (line === undefined) return { busy: 0, total: 0 };
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy: busy / CLOCK_TICKS_PER_SECOND, total: (busy + idle! + iowait!) / CLOCK_TICKS_PER_SECOND };
}

/** CPU seconds of every thread (task) of the given processes, by thread id (/proc/<pid>/task/<tid>/stat, all ticks). */
export function threadCpuSeconds(pids: Iterable<number>): Map<number, number> {
  const each = new Map<number, number>();
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        each.set(Number(tid), (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND);
      } catch {
        // the thread ended between listing and reading
      }
    }
  }
  return each;
}

/**
 * Datagrams each IPv4 UDP socket dropped so far (its receive buffer was full), summed by local port
 * (/proc/net/udp's last column; sockets of every program in this network namespace).
 */
export function udpDropsByPort(): Map<number, number> {
  const drops = new Map<number, number>();
  let text: string;
  try {
    text = readFileSync("/proc/net/udp", "utf8");
  } catch {
    return drops;
  }
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 13) continue;
    const port = Number.parseInt(fields[1]!.split(":")[1] ?? "", 16);
    const dropped = Number(fields[fields.length - 1]);
    if (Number.isFinite(port) && Number.isFinite(dropped)) drops.set(port, (drops.get(port) ?? 0) + dropped);
  }
  return drops;
}
