/**
 * `npm run bench:threads -- --quick --servers ours-1,ours-2` (bench/threads.ts) runs to completion within its
 * bound (about 25 s here), prints the table and the targets, writes its JSON with a search and a CPU round
 * for our relay with one and two relay threads, spreads the allocations over both workers, and leaves no
 * process behind. coturn is left out (the full run compares with it). It does not check the targets: the
 * benchmark reports those. The search's pure planning (bench/lib/zero-loss-search.ts) is checked here too.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { highestRungHeld, nextRate, rung, type SearchPlan } from "../../bench/lib/zero-loss-search.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
/** The quick run takes about 25 s on two cores; it stops itself at this. */
const BENCH_LIMIT_S = 55;
const TEST_TIMEOUT_MS = (BENCH_LIMIT_S + 10) * 1000;

interface Step {
  rate: number;
  held: boolean;
  cpuPer1k?: number;
  serverCpuByPid: Record<string, number>;
}
interface Session {
  variant: string;
  purpose: "search" | "cpu";
  status: "ok" | "failed";
  note?: string;
  allocations: number;
  allocationsPerWorker?: number[];
  steps: Step[];
  zeroLossRate?: number;
}
interface Summary {
  rows: { variant: string; threads: number; zeroLossRate?: number; cpuPer1k?: number }[];
  commonRate?: number;
  targets: { what: string; met?: boolean }[];
  sessions: Session[];
  processes: { name: string; pid: number }[];
}

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/threads.ts", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // gone already
      }
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

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
      const result = await run(["--quick", "--servers", "ours-1,ours-2", "--out", out, "--time-limit", String(BENCH_LIMIT_S)], TEST_TIMEOUT_MS - 5_000);
      const report = `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
      expect(result.code, report).toBe(0);
      expect(existsSync(out), report).toBe(true);
      const summary = JSON.parse(readFileSync(out, "utf8")) as Summary;

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
    TEST_TIMEOUT_MS,
  );
});
