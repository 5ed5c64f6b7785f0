/**
 * The benchmark harnesses keep working: `bench/run.ts --quick` (one round, tiny loads, all three servers)
 * runs to completion within its bound, prints the table, writes a JSON file with a row for every server
 * and load it attempted (finite numbers where the load ran, "n/a" with a reason where the server cannot
 * run it) and an SVG chart, and leaves no process behind; `bench/signaling.ts` does the same for a tiny
 * signaling run; `bench/threads.ts --quick --servers ours-1,ours-2` searches and measures our relay with
 * one and two relay threads (coturn is left out: the full run compares with it), spreads the allocations
 * over both workers, and leaves no process behind. They do not check the performance targets: the
 * benchmarks themselves report those. One file, so the benches never run at the same time (each pins
 * cores and times itself). The zero-loss search's pure planning (bench/lib/zero-loss-search.ts) is
 * checked here too.
 */
import { run as runCommand, type RunResult } from "../node/processes.js";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { coturn417Built } from "../../bench/lib/servers.js";
import { highestRungHeld, nextRate, rung, type SearchPlan } from "../../bench/lib/zero-loss-search.js";

/**
 * The quick run takes about 50-55 s on two idle cores (coturn 4.17.1 built; less without); it stops itself
 * at BENCH_LIMIT_S. In CI it shares the two cores with two other test files, and once took over 75 s there.
 */
const BENCH_LIMIT_S = 120;
const TEST_TIMEOUT_MS = (BENCH_LIMIT_S + 15) * 1000;
/** bench:threads' quick run takes about 25 s on two idle cores; it stops itself at this. */
const THREADS_LIMIT_S = 80;
const THREADS_TEST_TIMEOUT_MS = (THREADS_LIMIT_S + 10) * 1000;

interface Row {
  load: string;
  server: string;
  status: "ok" | "n/a" | "failed";
  note?: string;
  messagesPerSecond?: number;
  lossPercent?: number;
  cpuPer1kWhole?: number;
  cpuPer1kData?: number;
  allocationsPerSecond?: number;
  lifecyclesPerSecond?: number;
  cpuPer1kLifecycles?: number;
  rssMb?: Record<string, number>;
  idleCpuPercent?: Record<string, number>;
}

interface Summary {
  options: { servers: string[]; oursNode: { path: string; version: string } };
  notes: string[];
  rows: Row[];
  measurements: { load: string; server: string }[];
  processes: { name: string; pid: number; command: string }[];
}

interface ThreadsStep {
  rate: number;
  held: boolean;
  cpuPer1k?: number;
  serverCpuByPid: Record<string, number>;
}
interface ThreadsSession {
  variant: string;
  purpose: "search" | "cpu";
  status: "ok" | "failed";
  note?: string;
  allocations: number;
  allocationsPerWorker?: number[];
  steps: ThreadsStep[];
  zeroLossRate?: number;
}
interface ThreadsSummary {
  rows: { variant: string; threads: number; zeroLossRate?: number; cpuPer1k?: number }[];
  commonRate?: number;
  targets: { what: string; met?: boolean }[];
  sessions: ThreadsSession[];
  processes: { name: string; pid: number }[];
}

/** One bench run, as the smoke tests start it. */
interface BenchRunOptions<T> {
  script: string;
  args: string[];
  /** Where the run writes its JSON (`--out`). */
  out: string;
  /** `--time-limit`: the bench stops itself after this many seconds. */
  timeLimitS: number;
  /** Past this the test kills the run's whole process group. */
  timeoutMs: number;
  /**
   * The processes the run's JSON says it started (at least `atLeast` of them), each checked gone once it
   * exits. Omitted for a bench whose exit code already says so.
   */
  started?: { of: (summary: T) => readonly { pid: number }[]; atLeast: number };
}

interface BenchRun<T> {
  result: RunResult;
  /** The exit code and everything the run wrote, for failure messages. */
  report: string;
  /** The JSON it wrote to `out`. */
  summary: T;
}

/**
 * Runs a bench script to completion (`--out`, `--time-limit` added), expects exit 0 and its JSON, checks
 * that no process it started is left, and returns the parsed JSON for the checks of each bench.
 */
async function runBench<T>(options: BenchRunOptions<T>): Promise<BenchRun<T>> {
  const args = ["--import", "tsx", options.script, ...options.args, "--out", options.out, "--time-limit", String(options.timeLimitS)];
  const result = await runCommand(process.execPath, args, options.timeoutMs, { group: true });
  const report = `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
  expect(result.code, report).toBe(0);
  expect(existsSync(options.out), report).toBe(true);
  const summary = JSON.parse(readFileSync(options.out, "utf8")) as T;
  if (options.started !== undefined) {
    const started = options.started.of(summary);
    expect(started.length, report).toBeGreaterThanOrEqual(options.started.atLeast);
    expectGone(started.map((entry) => entry.pid));
  }
  return { result, report, summary };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead too (waiting for its parent to reap it).
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Fails, naming them, when any of these processes still runs. */
function expectGone(pids: readonly number[]): void {
  const left = pids.filter(alive);
  expect(left, `still running: ${JSON.stringify(left)}`).toEqual([]);
}

describe("npm run bench -- --quick", () => {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-bench-smoke-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    "prints the table, writes JSON and SVG with a row per server and load, and leaves no process behind",
    async () => {
      const svg = join(dir, "quick.svg");
      // Every process it started is gone: servers, echo peers, uclients, generators.
      const { result, report, summary } = await runBench<Summary>({
        script: "bench/run.ts",
        // On this Node: the image's (the default) may be half installed by the LTS run beside this suite.
        args: ["--quick", "--ours-node", "current", "--svg", svg],
        out: join(dir, "quick.json"),
        timeLimitS: BENCH_LIMIT_S,
        timeoutMs: TEST_TIMEOUT_MS - 5_000,
        started: { of: (json) => json.processes, atLeast: 10 },
      });
      expect(readFileSync(svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
      // The Node our relay ran on is recorded and said.
      expect(summary.options.oursNode).toEqual({ path: process.execPath, version: process.version, label: expect.any(String) });
      expect(summary.notes.some((note) => note.includes(`on Node ${process.version}, the one running the bench`))).toBe(true);

      // coturn 4.17.1 takes part once bench/servers/build-coturn.sh has built it (CI does not).
      expect(summary.options.servers).toEqual(["ours", "coturn", ...(coturn417Built() ? ["coturn-4.17"] : []), "node-turn"]);
      const loads = [...new Set(summary.measurements.map((m) => m.load))];
      // uclient, generator Send (UDP) and ChannelData (TLS), lifecycles, idle allocations
      expect(loads.sort(), report).toEqual(["alloc", "gen-send-l100", "gen-tls-channel-l100", "lifecycle", "uclient-send-m2-l100"]);
      for (const load of loads) {
        for (const server of summary.options.servers) {
          const row = summary.rows.find((r) => r.load === load && r.server === server);
          expect(row, `${load} ${server}\n${report}`).toBeDefined();
          // The table on stdout has the same row.
          expect(result.stdout).toContain(`| ${load} | ${server} |`);
          expect(row!.status, `${load} ${server}: ${row!.note}`).not.toBe("failed");
          if (row!.status === "n/a") {
            expect(server, `only node-turn lacks loads: ${load} ${server} ${row!.note}`).toBe("node-turn");
            expect(row!.note).toMatch(/node-turn/);
            continue;
          }
          if (load === "alloc") {
            expect(Number.isFinite(row!.allocationsPerSecond), `${server} alloc/s`).toBe(true);
            expect(row!.allocationsPerSecond!).toBeGreaterThan(0);
            for (const mb of Object.values(row!.rssMb ?? {})) expect(Number.isFinite(mb) && mb > 0).toBe(true);
            expect(Object.keys(row!.rssMb ?? {}).length).toBe(3); // 0 and two checkpoints
            expect(Object.keys(row!.idleCpuPercent ?? {}).length).toBe(3);
            for (const percent of Object.values(row!.idleCpuPercent ?? {})) expect(Number.isFinite(percent) && percent >= 0).toBe(true);
          } else if (load === "lifecycle") {
            expect(row!.lifecyclesPerSecond!, `${server} lifecycles/s`).toBeGreaterThan(0);
            expect(Number.isFinite(row!.cpuPer1kLifecycles), `${server} CPU per 1k lifecycles`).toBe(true);
          } else {
            expect(Number.isFinite(row!.lossPercent), `${load} ${server} loss`).toBe(true);
            expect(Number.isFinite(row!.cpuPer1kWhole), `${load} ${server} CPU per 1k, whole run`).toBe(true);
            expect(Number.isFinite(row!.cpuPer1kData), `${load} ${server} CPU per 1k, data window`).toBe(true);
            if (load.startsWith("gen-")) expect(Number.isFinite(row!.messagesPerSecond), `${load} ${server} msg/s`).toBe(true);
          }
        }
      }
      // node-turn ran where it can: the generator's Send indications over UDP and the idle allocations.
      expect(summary.rows.filter((r) => r.server === "node-turn" && r.status === "ok").map((r) => r.load).sort()).toEqual(["alloc", "gen-send-l100"]);
      expect(result.stdout).toMatch(/### Ratios/);
      expect(result.stdout).toMatch(/CPU\/1k whole, ours ÷ coturn 4\.6\.1/);
      expect(result.stdout).toMatch(/^Targets: /m);
      if (coturn417Built()) expect(result.stdout).toMatch(/CPU\/1k whole, ours ÷ coturn 4\.17 \| [0-9.]+ \| ≤ 1\.0 \| (yes|NO) \|/);
      else expect(result.stderr).toMatch(/coturn 4\.17\.1 is not built/);
    },
    TEST_TIMEOUT_MS,
  );
});

interface SignalingRow {
  server: string;
  deflateOffered: boolean;
  negotiated: string;
  joinP50Ms: number;
  joinP99Ms: number;
  joins: number;
  msgPerSec2: number;
}

describe("npm run bench:signaling (a tiny run)", () => {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-bench-signaling-smoke-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    "measures the Worker, PeerJS and the empty-room floor with and without the client's deflate offer, prints the table and the targets, and exits 0 with nothing left running",
    async () => {
      // Exit 0 also means every process it started was gone at the end (it exits 1 otherwise).
      const { result, report, summary } = await runBench<{ results: SignalingRow[]; targets: string[] }>({
        script: "bench/signaling.ts",
        args: ["--quick", "--joins", "3", "--duration", "1", "--peers", "2"],
        out: join(dir, "signaling.json"),
        timeLimitS: BENCH_LIMIT_S,
        timeoutMs: TEST_TIMEOUT_MS - 5_000,
      });
      expect(summary.results.map((row) => [row.server, row.deflateOffered])).toEqual([
        ["relaykit Worker", true],
        ["relaykit Worker", false],
        ["PeerJS server", true],
        ["PeerJS server", false],
        ["empty DO room (floor)", true],
        ["empty DO room (floor)", false],
      ]);
      for (const row of summary.results) {
        expect(row.joins, report).toBe(3);
        expect(row.joinP50Ms > 0 && Number.isFinite(row.joinP50Ms), `${row.server} join p50`).toBe(true);
        expect(row.msgPerSec2 > 0 && Number.isFinite(row.msgPerSec2), `${row.server} msg/s`).toBe(true);
        // Without an offer nothing can be negotiated.
        if (!row.deflateOffered) expect(row.negotiated).toBe("none");
        expect(result.stdout).toContain(`| ${row.server} | ${row.deflateOffered ? "yes" : "no"} | ${row.negotiated} |`);
      }
      expect(summary.targets.length).toBe(6);
      expect(result.stdout).toMatch(/msg\/s with 2 peers, Worker ÷ PeerJS: [0-9.]+ \(target ≥ 1: (met|NOT met)\)/);
    },
    TEST_TIMEOUT_MS,
  );
});

describe("the zero-loss search's plan", () => {
  const plan: SearchPlan = { startRate: 1000, factor: 2, maxRate: 10_000, maxSteps: 8, bisectSteps: 2, tolerance: 0.05 };

  it("ramps up the ladder, bisects after the first loss, and stops within its bounds", () => {
    expect(nextRate(plan, [])).toBe(1000);
    expect(nextRate(plan, [{ rate: 1000, held: true }])).toBe(2000);
    const ramp = [1000, 2000, 4000].map((rate) => ({ rate, held: true }));
    expect(nextRate(plan, [...ramp, { rate: 8000, held: false }])).toBe(6000);
    expect(nextRate(plan, [...ramp, { rate: 8000, held: false }, { rate: 6000, held: false }])).toBe(5000);
    // two bisections: over
    expect(nextRate(plan, [...ramp, { rate: 8000, held: false }, { rate: 6000, held: false }, { rate: 5000, held: true }])).toBeUndefined();
    // every rung held up to the maximum: over (16000 > maxRate)
    expect(nextRate(plan, [1000, 2000, 4000, 8000].map((rate) => ({ rate, held: true })))).toBeUndefined();
    expect(nextRate({ ...plan, maxSteps: 2 }, [1000, 2000].map((rate) => ({ rate, held: true })))).toBeUndefined();
    // the first rung lost: bisect towards 0
    expect(nextRate(plan, [{ rate: 1000, held: false }])).toBe(500);
    expect(rung(plan, 3)).toBe(8000);
    expect(highestRungHeld(plan, [...ramp, { rate: 8000, held: false }, { rate: 6000, held: true }])).toBe(2);
    expect(highestRungHeld(plan, [{ rate: 1000, held: false }])).toBe(-1);
  });
});

describe("npm run bench:threads -- --quick --servers ours-1,ours-2", () => {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-bench-threads-smoke-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    "searches and measures ours with 1 and 2 relay threads, prints the table and targets, writes the JSON, and leaves no process behind",
    async () => {
      // Every process it started is gone: servers (and our workers with them), echo peers, generators.
      const { result, report, summary } = await runBench<ThreadsSummary>({
        script: "bench/threads.ts",
        args: ["--quick", "--servers", "ours-1,ours-2"],
        out: join(dir, "threads.json"),
        timeLimitS: THREADS_LIMIT_S,
        timeoutMs: THREADS_TEST_TIMEOUT_MS - 5_000,
        started: { of: (json) => json.processes, atLeast: 6 },
      });

      expect(summary.rows.map((row) => [row.variant, row.threads])).toEqual([
        ["ours-1", 1],
        ["ours-2", 2],
      ]);
      const searches = summary.sessions.filter((s) => s.purpose === "search");
      expect(searches.map((s) => s.variant)).toEqual(["ours-1", "ours-2"]);
      for (const search of searches) {
        expect(search.status, `${search.variant}: ${search.note}\n${report}`).toBe("ok");
        expect(search.allocations).toBeGreaterThanOrEqual(64);
        expect(search.steps.length, report).toBeGreaterThan(0);
        expect(Number.isFinite(search.zeroLossRate), report).toBe(true);
      }
      // Two workers: the primary and both workers are in the tree, and SO_REUSEPORT gave each some allocations.
      const two = searches.find((s) => s.variant === "ours-2")!;
      expect(two.allocationsPerWorker?.length, report).toBe(2);
      expect(two.allocationsPerWorker!.reduce((a, b) => a + b, 0)).toBe(two.allocations);
      for (const count of two.allocationsPerWorker!) expect(count, JSON.stringify(two.allocationsPerWorker)).toBeGreaterThan(0);
      expect(Object.keys(two.steps[0]!.serverCpuByPid).length).toBe(3);

      // The CPU rounds ran at the common rate whenever the searches held one.
      if (summary.commonRate !== undefined) {
        const cpu = summary.sessions.filter((s) => s.purpose === "cpu");
        expect(cpu.map((s) => s.variant).sort()).toEqual(["ours-1", "ours-2"]);
        for (const session of cpu) {
          expect(session.status, `${session.variant}: ${session.note}`).toBe("ok");
          expect(session.steps[0]!.rate).toBe(summary.commonRate);
          expect(Number.isFinite(session.steps[0]!.cpuPer1k), report).toBe(true);
        }
      }

      expect(result.stdout).toMatch(/^\| ours \| 1 \| /m);
      expect(result.stdout).toMatch(/^\| ours \| 2 \| /m);
      expect(result.stdout).toMatch(/^Scaling, zero-loss msg\/s 2 threads ÷ 1 thread: ours /m);
      expect(result.stdout).toMatch(/\(a\) ours CPU\/1k msgs, 2 threads ÷ 1 thread/);
      expect(result.stdout).toMatch(/^Targets: /m);
      expect(result.stdout).toMatch(/nothing pinned/);

      // Our workers are gone too (forked by the primary, so known only by the CPU readings of its tree).
      expectGone(summary.sessions.flatMap((s) => s.steps.flatMap((step) => Object.keys(step.serverCpuByPid).map(Number))));
    },
    THREADS_TEST_TIMEOUT_MS,
  );
});
