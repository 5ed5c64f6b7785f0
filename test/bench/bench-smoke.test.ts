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

/** The quick run takes about 50-55 s on two cores (coturn 4.17.1 built; less without); it stops itself at BENCH_LIMIT_S. */
const BENCH_LIMIT_S = 75;
const TEST_TIMEOUT_MS = (BENCH_LIMIT_S + 15) * 1000;
/** bench:threads' quick run takes about 25 s on two cores; it stops itself at this. */
const THREADS_LIMIT_S = 55;
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
  options: { servers: string[] };
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

/** Runs a bench script to completion, its whole process group killed after `timeoutMs`. */
function run(script: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return runCommand(process.execPath, ["--import", "tsx", script, ...args], timeoutMs, { group: true });
}

/** What a failed assertion prints: the exit code and everything the run wrote. */
function runReport(result: { code: number | null; stdout: string; stderr: string }): string {
  return `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
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

describe("npm run bench -- --quick", () => {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-bench-smoke-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    "prints the table, writes JSON and SVG with a row per server and load, and leaves no process behind",
    async () => {
      const out = join(dir, "quick.json");
      const svg = join(dir, "quick.svg");
      const result = await run("bench/run.ts", ["--quick", "--out", out, "--svg", svg, "--time-limit", String(BENCH_LIMIT_S)], TEST_TIMEOUT_MS - 5_000);
      const report = runReport(result);
      expect(result.code, report).toBe(0);
      expect(existsSync(out), report).toBe(true);
      expect(readFileSync(svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);

      const summary = JSON.parse(readFileSync(out, "utf8")) as Summary;
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

      // Every process it started is gone: servers, echo peers, uclients, generators.
      expect(summary.processes.length).toBeGreaterThanOrEqual(10);
      const left = summary.processes.filter((p) => alive(p.pid));
      expect(left, JSON.stringify(left)).toEqual([]);
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
      const out = join(dir, "signaling.json");
      const result = await run("bench/signaling.ts", ["--quick", "--joins", "3", "--duration", "1", "--peers", "2", "--out", out, "--time-limit", String(BENCH_LIMIT_S)], TEST_TIMEOUT_MS - 5_000);
      const report = runReport(result);
      // Exit 0 also means every process it started was gone at the end (it exits 1 otherwise).
      expect(result.code, report).toBe(0);
      const summary = JSON.parse(readFileSync(out, "utf8")) as { results: SignalingRow[]; targets: string[] };
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
      const out = join(dir, "threads.json");
      const result = await run("bench/threads.ts", ["--quick", "--servers", "ours-1,ours-2", "--out", out, "--time-limit", String(THREADS_LIMIT_S)], THREADS_TEST_TIMEOUT_MS - 5_000);
      const report = `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
      expect(result.code, report).toBe(0);
      expect(existsSync(out), report).toBe(true);
      const summary = JSON.parse(readFileSync(out, "utf8")) as ThreadsSummary;

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

      // Every process it started is gone: servers (and our workers with them), echo peers, generators.
      expect(summary.processes.length).toBeGreaterThanOrEqual(6);
      const left = summary.processes.filter((p) => alive(p.pid));
      expect(left, JSON.stringify(left)).toEqual([]);
      // Our workers too (forked by the primary, so known only by the CPU readings of its tree).
      const workers = summary.sessions.flatMap((s) => s.steps.flatMap((step) => Object.keys(step.serverCpuByPid).map(Number)));
      expect(workers.filter(alive)).toEqual([]);
    },
    THREADS_TEST_TIMEOUT_MS,
  );
});
