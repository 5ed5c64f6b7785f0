/**
 * `node relay/main.ts` (through tsx, or the bundle the container runs): parse the coturn-style
 * options, start the relay, log one JSON line per event, and handle the signals an orchestrator
 * sends:
 *
 *   SIGTERM, SIGINT, drain: refuse new allocations, /readyz answers 503, tell the fleet (with
 *   SIGUSR1          --fleet-url) "draining" at once, wait up to --drain-timeout for live
 *                    allocations to end (exiting as soon as the last one does), close the rest,
 *                    close the fleet channel cleanly (1000), exit 0. SIGUSR1 is coturn's drain signal.
 *   any of them again  exit 1 at once, without waiting
 *   SIGHUP           read the options again and take the new secrets, TLS certificate, metrics
 *                    token and fleet key; live allocations are not touched; a bad file is logged
 *                    and changes nothing
 *
 * Start-up problems (a bad option, a port in use, a STUN server that does not answer) are one
 * `relay: …` line on stderr and a non-zero exit, never a stack trace.
 *
 * Once listening, an error nothing caught is logged ("uncaught-error", with its stack) and counted
 * (relay_uncaught_errors_total), and the relay keeps serving (ops/process-errors.ts): no datagram,
 * segment or TLS record may end the process. Fatal still: anything before the listeners are bound
 * (nothing is served yet and the operator must see the start fail), a failure while stopping (the
 * process is on its way out: exit 1), and what Node itself cannot survive (out of memory).
 */
// First: it sets a V8 flag that must hold before the rest of the relay allocates.
import "./young-generation.js";
import cluster from "node:cluster";
import { availableCpus } from "./cluster/available-cpus.js";
import { PrimaryStartError, runPrimary } from "./cluster/primary.js";
import { SeatError } from "./cluster/seat.js";
import { runWorker } from "./cluster/worker.js";
import { relayWorkerCount } from "./cluster/worker-count.js";
import { loadNativeUdp } from "./transport/native-udp.js";
import { RELAY_USAGE, RelayConfigError, parseRelayArgs, type RelayConfig } from "./config.js";
import { DiscoveryError, discoverRelayAddresses, externalAddressesFrom } from "./ops/discovery.js";
import { startOpsListener, type OpsListener } from "./ops/http.js";
import { createRelayLogger, type RelayLogger } from "./ops/log.js";
import { createRelayMetrics, type RelayMetrics } from "./ops/metrics.js";
import type { FleetCounters } from "./fleet/control-client.js";
import { createRelayFleet, fleetRelayOf, type RelayFleet } from "./fleet/relay-fleet.js";
import type { UsageLedgerCounts } from "./fleet/usage-ledger.js";
import { handleUncaughtErrors } from "./ops/process-errors.js";
import { RelayServer, type ListenerAddress } from "./server/relay-server.js";

/** Exit codes: 2 for a configuration the operator must fix, 1 for anything else that stops the start. */
const EXIT_BAD_CONFIG = 2;
const EXIT_START_FAILED = 1;

function fail(message: string, code: number): never {
  process.stderr.write(`relay: ${message}\n`);
  process.exit(code);
}

function parse(argv: readonly string[]): RelayConfig | null {
  try {
    const parsed = parseRelayArgs(argv, process.env);
    return parsed.help ? null : parsed.config;
  } catch (error) {
    if (error instanceof RelayConfigError) fail(error.message, EXIT_BAD_CONFIG);
    throw error;
  }
}

/** The config with --external-ip-stun-server's answers in place of --external-ip. */
async function withDiscoveredAddresses(config: RelayConfig, log: RelayLogger): Promise<RelayConfig> {
  const stunServer = config.externalIpStunServer;
  if (stunServer === null) return config;
  try {
    const discovered = await discoverRelayAddresses(stunServer, config.relayIps);
    const externalIps = externalAddressesFrom(discovered);
    log.info({ event: "external-ip-discovered", stunServer: `${stunServer.host}:${stunServer.port}`, discovered, externalIps });
    return { ...config, externalIps };
  } catch (error) {
    if (error instanceof DiscoveryError) fail(error.message, EXIT_START_FAILED);
    throw error;
  }
}

async function startListeners(server: RelayServer): Promise<ListenerAddress[]> {
  try {
    return await server.start();
  } catch (error) {
    // A port in use or an address this host does not have: say which, without a stack trace.
    const { code, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
    await server.stop();
    fail(`cannot listen on ${address ?? "?"}:${port ?? "?"} (${code ?? String(error)}); check --listening-ip and the ports`, EXIT_START_FAILED);
  }
}

async function startMetrics(
  config: RelayConfig,
  server: RelayServer,
  token: () => string | null,
  fleet: FleetCounters | null,
  usage: { counts(): UsageLedgerCounts } | null,
): Promise<{ metrics: RelayMetrics; listener: OpsListener } | null> {
  if (config.prometheus === null) return null;
  const metrics = createRelayMetrics(server, fleet, usage);
  try {
    const listener = await startOpsListener({
      address: config.prometheus.address,
      port: config.prometheus.port,
      token,
      readiness: () => server.readiness(),
      metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
    });
    return { metrics, listener };
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    await server.stop();
    fail(
      `cannot listen for metrics on ${config.prometheus.address}:${config.prometheus.port} (${code ?? String(error)}); check --prometheus-address and --prometheus-port`,
      EXIT_START_FAILED,
    );
  }
}

/**
 * --relay-threads applied (relay/cluster/worker-count.ts). A lower count than asked is told in the
 * listening line (`relayThreadsReduced`); a missing addon is also a warning of its own, since the
 * operator did not choose it.
 */
function workerCount(config: RelayConfig, log: RelayLogger): { count: number; reduced?: { wanted: number; reason: string } } {
  const native = loadNativeUdp();
  const decided = relayWorkerCount({
    relayThreads: config.relayThreads,
    cpus: config.relayThreads === "auto" ? availableCpus() : 1,
    minPort: config.minPort,
    maxPort: config.maxPort,
    udp: config.udp,
    udpIo: config.udpIo,
    native: native.ok ? { ok: true } : { ok: false, reason: native.reason },
  });
  if (!decided.ok) fail(decided.message, EXIT_BAD_CONFIG);
  if (decided.reduced === undefined) return { count: decided.count };
  const reduced = { wanted: decided.reduced.from, reason: decided.reduced.reason };
  if (decided.reduced.level === "warn") log.warn({ event: "relay-threads-reduced", relayThreads: decided.count, ...reduced });
  return { count: decided.count, reduced };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const parsed = parse(argv);
  if (parsed === null) {
    process.stdout.write(`${RELAY_USAGE}\n`);
    return;
  }
  const log = createRelayLogger(parsed.logLevel);
  const config = await withDiscoveredAddresses(parsed, log);
  const threads = workerCount(config, log);
  if (threads.count > 1) {
    try {
      await runPrimary({ config, threads: threads.count, argv, log, ...(threads.reduced !== undefined && { reduced: threads.reduced }) });
    } catch (error) {
      if (error instanceof SeatError) fail(error.message, EXIT_BAD_CONFIG);
      if (error instanceof PrimaryStartError) fail(error.message, EXIT_START_FAILED);
      const { code, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
      fail(`cannot listen on ${address ?? "?"}:${port ?? "?"} (${code ?? String(error)}); check --listening-ip and the ports`, EXIT_START_FAILED);
    }
    return;
  }
  const server = new RelayServer(config, (event) => (event.event === "request-failed" ? log.warn(event) : log.info(event)));
  const listeners = await startListeners(server);
  const fleet: RelayFleet | null =
    config.fleet === null ? null : createRelayFleet(config, config.fleet, fleetRelayOf(server), listeners, { info: (line) => log.info(line), warn: (line) => log.warn(line) });
  let metricsToken = config.prometheus?.token ?? null;
  const ops = await startMetrics(config, server, () => metricsToken, fleet?.client ?? null, fleet?.usage ?? null);
  log.info({
    event: "listening",
    listeners,
    udpIo: server.udpImplementation,
    tcpIo: server.tcpImplementation,
    relayThreads: 1,
    ...(threads.reduced !== undefined && { relayThreadsReduced: threads.reduced }),
    relayPorts: `${config.minPort}-${config.maxPort}`,
    realm: config.realm,
    ...(ops !== null && { metrics: { address: ops.listener.address, port: ops.listener.port } }),
    ...(fleet !== null && { fleet: { url: config.fleet!.url, relayId: config.fleet!.relayId, urls: fleet.urls, usageBoot: fleet.usage.boot } }),
  });
  handleUncaughtErrors(process, {
    log: (line) => log.error(line),
    count: (kind) => ops?.metrics.countUncaughtError(kind),
  });
  // After the listening line: the fleet hands the relay out only once it serves.
  fleet?.client.start();

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ event: "stopping-now", signal, allocations: server.allocationCount });
      process.exit(1);
    }
    stopping = true;
    server.drain();
    // Before any wait: the fleet stops handing this relay out and moves its rooms' calls elsewhere.
    fleet?.client.setState("draining");
    const live = server.allocationCount;
    log.info({ event: "stopping", signal, allocations: live, drainTimeoutSeconds: config.drainTimeoutSeconds });
    if (config.drainTimeoutSeconds > 0 && live > 0) {
      const idle = await server.whenIdle(config.drainTimeoutSeconds * 1000);
      log.info({ event: "drained", reason: idle ? "every allocation ended" : "drain timeout", allocations: server.allocationCount });
    }
    await server.stop();
    await fleet?.stop();
    await ops?.listener.close();
    process.exit(0);
  };
  const reload = () => {
    try {
      const next = parseRelayArgs(argv, process.env);
      if (next.help) return;
      const applied = server.reload(next.config);
      // The metrics listener itself stays where it is; only its token can change without a restart.
      if (ops !== null) metricsToken = next.config.prometheus?.token ?? null;
      // Likewise the fleet channel: only its key is taken (used from the next connection on).
      if (fleet !== null && next.config.fleet !== null) fleet.setKeys(next.config.fleet.keys);
      ops?.metrics.countReload("ok");
      log.info({ event: "reloaded", secretCount: applied.secrets, tls: applied.tls, metricsToken: metricsToken !== null, ...(fleet !== null && { fleetKeys: next.config.fleet?.keys.length ?? 0 }) });
    } catch (error) {
      ops?.metrics.countReload("failed");
      // RelayConfigError messages never quote a secret; file errors name paths only.
      log.error({ event: "reload-failed", error: error instanceof Error ? error.message : String(error), keeping: "the running secrets and certificate" });
    }
  };
  const stopOrExit = (signal: NodeJS.Signals) =>
    stop(signal).catch((error: unknown) => {
      log.error({ event: "stop-failed", signal, error: error instanceof Error ? error.message : String(error) });
      process.exit(1);
    });
  process.on("SIGINT", stopOrExit);
  process.on("SIGTERM", stopOrExit);
  // coturn's drain signal. A listener also keeps Node from opening its inspector on SIGUSR1.
  process.on("SIGUSR1", stopOrExit);
  process.on("SIGHUP", reload);
}

// Whatever the start did not foresee still ends as one line and exit 1, not a stack trace.
(cluster.isWorker ? runWorker() : main()).catch((error: unknown) => fail(`could not start: ${error instanceof Error ? error.message : String(error)}`, EXIT_START_FAILED));
