/**
 * The vitest side of the browser end-to-end suites: run one script of this folder inside a fresh
 * loopback-only network namespace (test/node/netns.ts) and read the JSON summary it prints last.
 * Where namespaces cannot be made, a suite fails in CI and is skipped elsewhere, with the reason.
 */
import { existsSync } from "node:fs";
import { netnsSuiteUnavailable, runInNetns, type NetnsRunResult } from "../../node/netns.js";
import { CHROMIUM_PATH } from "../chromium.js";

export interface ScriptSummary {
  ok: boolean;
  error?: string;
  elapsedMs?: number;
  phases?: Record<string, number>;
  phase?: string;
  cleanupErrors?: string[];
}

export interface ScriptRun<S extends ScriptSummary> {
  result: NetnsRunResult;
  summary: S;
  /** Everything the run printed, for assertion messages. */
  details: string;
}

/** Cut long output down for failure messages: the head and the tail, where the causes are. */
function trimmed(text: string, limit = 12_000): string {
  return text.length <= limit ? text : `${text.slice(0, limit / 2)}\n…(${text.length - limit} characters left out)…\n${text.slice(-limit / 2)}`;
}

export function describeRun(result: NetnsRunResult): string {
  return `exit ${result.code} signal ${result.signal} timedOut ${result.timedOut} after ${result.elapsedMs} ms\nstdout:\n${trimmed(result.stdout)}\nstderr:\n${trimmed(result.stderr)}`;
}

/**
 * Runs `node --import tsx test/e2e/browser/<script> ...args` in a fresh namespace, bounded by
 * `timeoutMs` (the script's own `--timeout-ms` should be well below it, so it can still clean up
 * and report). Throws when there is no summary line at all.
 */
export async function runBrowserScript<S extends ScriptSummary>(script: string, args: string[], timeoutMs: number): Promise<ScriptRun<S>> {
  const command = `"${process.execPath}" --import tsx test/e2e/browser/${script} "$@"`;
  const result = await runInNetns(command, args, timeoutMs);
  const details = describeRun(result);
  const line = result.stdout.trim().split("\n").filter((candidate) => candidate.startsWith("{")).at(-1);
  if (line === undefined) throw new Error(`no JSON summary from ${script}: ${details}`);
  const summary = JSON.parse(line) as S;
  const seconds = ((summary.elapsedMs ?? result.elapsedMs) / 1000).toFixed(1);
  // The issue asks for the end-to-end times to be printed.
  console.log(`${script} ${args.join(" ")}: ${summary.ok ? "ok" : "FAILED"} in ${seconds} s (whole process ${(result.elapsedMs / 1000).toFixed(1)} s); phases (ms): ${JSON.stringify(summary.phases ?? {})}`);
  return { result, summary, details };
}

/**
 * Null when the suite can run (network namespaces and Debian's chromium); otherwise the reason, after
 * registering (in CI) a failing test that states it, or (elsewhere) printing it.
 */
export function netnsGate(suite: string): Promise<string | null> {
  return netnsSuiteUnavailable(suite, async () => (existsSync(CHROMIUM_PATH) ? null : `${CHROMIUM_PATH} is missing (Debian: apt-get install chromium)`));
}
