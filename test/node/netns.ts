/**
 * Runs a command inside a fresh network namespace that has nothing but loopback, so a WebRTC stack
 * started there cannot reach any real network (no STUN lookups to the internet, no host candidates
 * on real interfaces). As root: `unshare --net --mount`; otherwise an unprivileged user namespace
 * (`unshare --user --map-root-user --net --mount`). Loopback is brought up before anything else.
 *
 * The command runs in a process group of its own; on timeout (and after it ends) the whole group is
 * killed by its PID, so nothing it started (npx → tsx → node) outlives it.
 */
import { spawn } from "node:child_process";
import { describe, it } from "vitest";
import { ISOLATED_NETNS_MARK } from "../e2e/isolation.js";
import { repoRoot, signalGroup, type RunResult } from "./processes.js";

const PROBE_TIMEOUT_MS = 10_000;

/** The unshare invocation for this user. */
export function unshareArgs(): string[] {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  return root ? ["--net", "--mount"] : ["--user", "--map-root-user", "--net", "--mount"];
}

export interface NetnsRunResult extends RunResult {
  timedOut: boolean;
  elapsedMs: number;
}

/**
 * Runs `sh -c "ip link set lo up && exec <script>" sh ...args` in a fresh namespace, from the repo
 * root. `script` is shell text written by the test (not user input); `args` are passed as "$@".
 */
export function runInNetns(script: string, args: string[], timeoutMs: number): Promise<NetnsRunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("unshare", [...unshareArgs(), "--", "sh", "-c", `ip link set lo up && exec ${script}`, "sh", ...args], {
      cwd: repoRoot,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, [ISOLATED_NETNS_MARK]: "1" },
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      // Whatever the command left behind in its group goes too.
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
      resolve({ code, signal, stdout, stderr, timedOut, elapsedMs: Date.now() - started });
    });
  });
}

/** Null when a loopback-only namespace can be made here; otherwise why not. */
export async function netnsUnavailableReason(): Promise<string | null> {
  try {
    const result = await runInNetns("ip -o link show", [], PROBE_TIMEOUT_MS);
    if (result.timedOut) return `unshare ${unshareArgs().join(" ")} did not finish within ${PROBE_TIMEOUT_MS} ms`;
    if (result.code !== 0) return `unshare ${unshareArgs().join(" ")} failed (exit ${result.code}): ${result.stderr.trim()}`;
    const links = result.stdout.trim().split("\n").filter((line) => line.length > 0);
    if (links.length !== 1 || !/\blo\b.*\bUP\b/.test(links[0]!)) return `the new namespace is not loopback-only: ${result.stdout.trim()}`;
    return null;
  } catch (error) {
    return `could not run unshare: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * For suites that need namespaces: null when the machine can make them (and `extra`, if given, finds
 * nothing missing). Otherwise the reason, and in CI a failing test that says it — outside CI the
 * suite is skipped with the reason printed, so a developer without namespaces still sees why.
 */
export async function netnsSuiteUnavailable(suite: string, extra?: () => Promise<string | null>): Promise<string | null> {
  const reason = (await netnsUnavailableReason()) ?? (extra === undefined ? null : await extra());
  if (reason === null) return null;
  if (process.env["CI"]) {
    describe(suite, () => {
      it("needs what this suite runs on", () => {
        throw new Error(`${suite} cannot run on this machine: ${reason}`);
      });
    });
  } else {
    console.warn(`${suite} skipped: ${reason}`);
  }
  return reason;
}
