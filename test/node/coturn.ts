/**
 * A real coturn for the Node suites: `turnserver` on 127.0.0.1 only, with TURN REST authentication
 * (`use-auth-secret`) and nothing read from or written to the system (no config file, its database
 * and pid file in a temporary directory), and `turnutils_uclient` run against it with a given
 * username and password. Every wait is bounded; the server is stopped by its process group.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpAndUdpPort, run, signalGroup, sleep, type RunResult } from "./processes.js";
import { findExecutable } from "./stun-capture.js";

const STARTUP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const PROBE_INTERVAL_MS = 100;
/**
 * uclient waits a random 1-6 s before sending its first packet (coturn's uclient.c), then until
 * every packet came back: a successful run takes up to about 7 s, a refused one returns at once.
 */
const UCLIENT_TIMEOUT_MS = 20_000;

/** How long a suite may take to start and stop coturn. */
export const COTURN_HOOK_TIMEOUT_MS = STARTUP_TIMEOUT_MS + STOP_TIMEOUT_MS + 5_000;
/** How long one uclient run may take, for test timeouts. */
export const UCLIENT_TEST_TIMEOUT_MS = UCLIENT_TIMEOUT_MS + 5_000;

const INSTALL_HINT = "run scripts/install-test-prerequisites.sh (it installs Debian's coturn package)";

/** Throws, naming the fix, unless coturn's server and client are installed. Never skips. */
export function requireCoturn(): void {
  const missing = ["turnserver", "turnutils_uclient"].filter((command) => findExecutable(command) === undefined);
  if (missing.length > 0) throw new Error(`${missing.join(" and ")} not found on PATH: ${INSTALL_HINT}`);
}


/** One STUN Binding request over UDP; true when any STUN success response comes back in time. */
export function stunBindingAnswers(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
    request.writeUInt32BE(0x2112a442, 4); // magic cookie
    randomBytes(12).copy(request, 8); // transaction id
    const finish = (answered: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on("message", (message) => {
      if (message.length >= 20 && message.readUInt16BE(0) === 0x0101 && message.subarray(8, 20).equals(request.subarray(8, 20))) finish(true);
    });
    socket.once("error", () => finish(false));
    socket.send(request, port, "127.0.0.1");
  });
}

export interface CoturnOptions {
  /** The shared secrets, each passed as one `--static-auth-secret`: coturn accepts any of them. */
  secrets: readonly string[];
  realm: string;
}

export interface Coturn {
  port: number;
  /** The full `turnserver` command line, for reports. */
  args: readonly string[];
  /** Everything the server logged so far. */
  output(): string;
  /** The server's log lines that name `username`, waiting up to `timeoutMs` for one matching `pattern`. */
  linesFor(username: string, pattern: RegExp, timeoutMs?: number): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Starts `turnserver` on a free port of 127.0.0.1 and waits until it answers STUN Binding.
 * Detached, so it leads a process group that `stop` ends as one.
 */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  requireCoturn();
  const dir = await mkdtemp(join(tmpdir(), "relaykit-coturn-"));
  const port = await freeTcpAndUdpPort();
  // Relay ports below Linux's ephemeral range (32768-60999), so they rarely meet anything else; a
  // port in use is skipped by coturn anyway. Each uclient run needs three.
  const minRelayPort = 20_000 + Math.floor(Math.random() * 10_000);
  const args = [
    "-n", // no configuration file: everything is on this command line
    "--listening-ip=127.0.0.1",
    "--relay-ip=127.0.0.1",
    `--listening-port=${port}`,
    `--min-port=${minRelayPort}`,
    `--max-port=${minRelayPort + 49}`,
    "--use-auth-secret",
    ...options.secrets.map((secret) => `--static-auth-secret=${secret}`),
    `--realm=${options.realm}`,
    "--no-tls",
    "--no-dtls",
    "--no-cli",
    // uclient's two clients relay to each other's relay address, which is on 127.0.0.1: coturn
    // refuses loopback peers (403 Forbidden IP) unless told otherwise.
    "--allow-loopback-peers",
    `--db=${join(dir, "turndb")}`, // not the system's /var/lib/turn/turndb
    `--pidfile=${join(dir, "turnserver.pid")}`, // not /var/run/turnserver.pid
    "--log-file=stdout",
    "--simple-log",
    "--verbose", // without it, coturn logs no per-session lines (allocations, 401s)
  ];
  const child = spawn("turnserver", args, { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = `exited early (code ${code}, signal ${signal})`));
  let spawnError: Error | undefined;
  child.once("error", (error) => (spawnError = error));

  const stop = async () => {
    const pid = child.pid;
    if (pid !== undefined && signalGroup(pid, "SIGTERM")) {
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(50);
      signalGroup(pid, "SIGKILL"); // a no-op when SIGTERM was enough
    }
    child.stdout.destroy();
    child.stderr.destroy();
    await rm(dir, { recursive: true, force: true });
  };

  const linesFor = async (username: string, pattern: RegExp, timeoutMs = 2_000) => {
    // The server logs as it answers, but its pipe may be read after uclient's exit is seen.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = output.split("\n").filter((line) => line.includes(`<${username}>`));
      if (lines.some((line) => pattern.test(line)) || Date.now() > deadline) return lines;
      await sleep(50);
    }
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  try {
    for (;;) {
      if (spawnError !== undefined) throw new Error(`turnserver could not start: ${spawnError.message}`);
      if (exited !== undefined) throw new Error(`turnserver ${exited}. Output:\n${output}`);
      if (Date.now() > deadline) throw new Error(`turnserver did not answer STUN on 127.0.0.1:${port} within ${STARTUP_TIMEOUT_MS} ms. Output:\n${output}`);
      if (await stunBindingAnswers(port, 250)) break;
      await sleep(PROBE_INTERVAL_MS);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, args: ["turnserver", ...args], output: () => output, linesFor, stop };
}

export interface UclientRun extends RunResult {
  args: readonly string[];
}

/**
 * `turnutils_uclient` with a TURN REST username and password: two clients each allocate a relay on
 * `port` (UDP), bind channels to each other's relay and send one packet each through them (-y,
 * client to client; -c, no RTCP pair; -n 1, one packet; -m 1, one pair). It exits 0 only when every
 * allocation succeeded, and with 255 ("Cannot complete Allocation") when authentication fails.
 */
export async function runUclient(port: number, username: string, password: string): Promise<UclientRun> {
  requireCoturn();
  const args = ["-p", String(port), "-L", "127.0.0.1", "-y", "-c", "-n", "1", "-m", "1", "-u", username, "-w", password, "127.0.0.1"];
  return { ...(await run("turnutils_uclient", args, UCLIENT_TIMEOUT_MS)), args: ["turnutils_uclient", ...args] };
}

/** The packet totals uclient prints when it is done, or undefined when it printed none. */
export function uclientTotals(output: string): { sent: number; received: number } | undefined {
  const match = /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(output);
  return match ? { sent: Number(match[1]), received: Number(match[2]) } : undefined;
}
