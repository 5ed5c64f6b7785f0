/**
 * The frame every browser end-to-end script runs in (inside the network namespace its test made):
 * one global deadline, cleanups that always run (the stack and Chromium live in process groups of
 * their own, so the namespace's group kill would not reach them), per-phase timings, and one JSON
 * summary as the last stdout line (`{"ok":true,...}` or `{"ok":false,"error":...}`), exit code 0
 * only when everything was checked.
 */
import { sleep, withTimeout } from "../../node/processes.js";

/** How long all cleanups together may take before the script exits anyway. */
const CLEANUP_TIMEOUT_MS = 15_000;

export type Summary = Record<string, unknown>;

export interface ScriptContext {
  /** Fields of the JSON summary; filled as the script goes, printed on success and failure alike. */
  summary: Summary;
  /** Marks the start of a named phase; its duration lands in `summary.phases` (ms). */
  phase(name: string): void;
  /** Runs when the script ends, last registered first, whatever happened. */
  onCleanup(cleanup: () => Promise<void>): void;
}

/**
 * Polls `probe` every `intervalMs` until it returns something other than undefined, at most
 * `timeoutMs`; then throws with `describe()` (what was seen last), so a failure says how far it got.
 */
export async function pollUntil<T>(what: string, timeoutMs: number, intervalMs: number, probe: () => Promise<T | undefined>, describe: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() + intervalMs > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms; last seen: ${describe()}`);
    await sleep(intervalMs);
  }
}

/** Reads `--name=value` flags; anything else is an error that names the accepted flags. */
export function parseFlags(argv: string[], accepted: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null || !accepted.includes(match[1]!)) throw new Error(`unknown argument ${arg}; accepted: ${accepted.map((name) => `--${name}`).join(" ")}`);
    flags.set(match[1]!, match[2] ?? "true");
  }
  return flags;
}

/** A positive number from a flag, or the default. */
export function numberFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const text = flags.get(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, not ${text}`);
  return value;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs `main` under a global deadline of `timeoutMs`, then the cleanups, then prints the summary and
 * exits. Never returns.
 */
export function runScript(name: string, timeoutMs: number, main: (context: ScriptContext) => Promise<void>): void {
  const started = Date.now();
  const summary: Summary = {};
  const phases: Record<string, number> = {};
  const cleanups: (() => Promise<void>)[] = [];
  let currentPhase: { name: string; startedAt: number } | undefined;
  let finishing = false;

  const closePhase = () => {
    if (currentPhase !== undefined) phases[currentPhase.name] = Date.now() - currentPhase.startedAt;
    currentPhase = undefined;
  };
  const context: ScriptContext = {
    summary,
    phase: (phaseName) => {
      closePhase();
      currentPhase = { name: phaseName, startedAt: Date.now() };
      summary["phase"] = phaseName;
    },
    onCleanup: (cleanup) => void cleanups.unshift(cleanup),
  };

  const finish = async (ok: boolean, error?: string) => {
    if (finishing) return;
    finishing = true;
    clearTimeout(deadline);
    closePhase();
    const cleanupErrors: string[] = [];
    const runCleanups = async () => {
      for (const cleanup of cleanups) {
        try {
          await cleanup();
        } catch (cleanupError) {
          cleanupErrors.push(messageOf(cleanupError));
        }
      }
    };
    await withTimeout(runCleanups(), CLEANUP_TIMEOUT_MS, "cleanup").catch((timeout: unknown) => cleanupErrors.push(messageOf(timeout)));
    const line = {
      ok,
      ...(error === undefined ? {} : { error }),
      elapsedMs: Date.now() - started,
      phases,
      ...summary,
      ...(cleanupErrors.length > 0 ? { cleanupErrors } : {}),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    if (!ok) process.stderr.write(`${name}: ${error}\n`);
    process.exit(ok ? 0 : 1);
  };

  const deadline = setTimeout(() => void finish(false, `global timeout: not done within ${timeoutMs} ms (phase: ${String(summary["phase"])})`), timeoutMs);
  // Interrupted (Ctrl-C, or a parent stopping us politely): still stop the stack and the browser,
  // which live in process groups of their own and would otherwise outlive us.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void finish(false, `interrupted by ${signal} (phase: ${String(summary["phase"])})`));
  main(context).then(
    () => finish(true),
    (error: unknown) => finish(false, messageOf(error)),
  );
}
