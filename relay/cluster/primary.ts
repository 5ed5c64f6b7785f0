/**
 * The primary process of a relay with several worker processes (`--relay-threads N`; the plan:
 * docs/design/relay-workers.md; a worker: ./worker.ts). It relays nothing itself. It:
 *
 *   - binds the UDP listeners' SO_REUSEPORT groups (N members each) and hands member i to the worker
 *     in slot i, so the groups never change while workers come and go (a client keeps reaching the
 *     worker that holds its allocation);
 *   - holds the quotas of all workers (./admission-ledger.ts): every allocation is admitted here;
 *   - shares the TCP and TLS listening handles with the workers (Node's cluster: it accepts, a
 *     worker serves the connection);
 *   - serves /metrics (its own counters plus every worker's, summed), /livez and /readyz;
 *   - drains every worker on SIGTERM, SIGINT or SIGUSR1, reloads every one on SIGHUP;
 *   - restarts a worker that dies, in the same slot with the same sockets, and logs and counts it:
 *     the dead worker's allocations are gone (their clients allocate again), their quota holds given back.
 */
import cluster, { type Worker } from "node:cluster";
import { createServer as createNetServer } from "node:net";
import { AggregatorRegistry, Counter, Gauge, Registry } from "prom-client";
import { parseRelayArgs, type RelayConfig } from "../config.js";
import type { RelayLogger } from "../ops/log.js";
import { startOpsListener, type OpsListener } from "../ops/http.js";
import { METRIC_PREFIX, registerFleetMetrics, registerProcessMetrics } from "../ops/metrics.js";
import { createRelayFleet, type RelayFleet } from "../fleet/relay-fleet.js";
import { ClusterFleet } from "./cluster-fleet.js";
import { handleUncaughtErrors } from "../ops/process-errors.js";
import { readReloadedTls, type ListenerAddress, type Readiness } from "../server/relay-server.js";
import { bindSharedUdpSocket, closeSharedUdpSocket } from "../transport/native-udp.js";
import { LISTENER_BUFFER_BYTES } from "../transport/udp-socket.js";
import { newNonceSecret } from "../auth/nonce.js";
import { AdmissionLedger } from "./admission-ledger.js";
import { PortLoans, type Loan } from "./port-loans.js";
import { messageType, type ToPrimary, type ToWorker, type WorkerMetrics } from "./messages.js";
import { slotOfToken, splitPortRange, type SeatUdpListener, type WorkerSeat } from "./seat.js";

/** Every worker must say it serves within this, at start and after a restart. */
export const WORKER_READY_TIMEOUT_MS = 30_000;
/** A worker that does not answer a metrics scrape or a reload within this is left out of it. */
export const WORKER_ANSWER_TIMEOUT_MS = 5_000;
/** How often a draining primary looks whether every allocation has ended. */
const DRAIN_POLL_MS = 50;
/** Told to stop, workers get this long to close and exit before they are killed. */
export const WORKER_STOP_GRACE_MS = 10_000;
/** A dead worker is started again after this, doubled for each death soon after a start, up to the maximum. */
export const RESTART_DELAY_MS = 100;
export const RESTART_DELAY_MAX_MS = 10_000;
/** A worker that lived this long before it died is restarted at once (it was not crash-looping). */
const STABLE_AFTER_MS = 60_000;
/** Tries at a free UDP+TCP port when --listening-port is 0 (tests), as the one-process relay does. */
const PORT_ZERO_ATTEMPTS = 5;
/** The first inherited descriptor in a worker: 0-2 are stdio, 3 is the cluster's IPC channel. */
const FIRST_INHERITED_FD = 4;

export class PrimaryStartError extends Error {
  override name = "PrimaryStartError";
}

interface Slot {
  readonly index: number;
  readonly seat: WorkerSeat;
  /** The parent's descriptors of this slot's UDP members, in seat.udp's order. */
  readonly fds: number[];
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  /** Deaths in a row, each soon after a start: the next restart waits longer. */
  quickDeaths: number;
}

/** Answers workers owe the primary, by request id. */
class PendingAnswers {
  private nextId = 1;
  private readonly waiting = new Map<number, (answer: ToPrimary | null) => void>();

  /** Sends `build(id)` to `worker` and resolves with its answer, or null after `timeoutMs` or if it cannot be sent. */
  ask(worker: Worker, build: (id: number) => ToWorker, timeoutMs: number): Promise<ToPrimary | null> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(id, null), timeoutMs);
      this.waiting.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      if (!sendTo(worker, build(id))) this.settle(id, null);
    });
  }

  settle(id: number, answer: ToPrimary | null): void {
    const resolve = this.waiting.get(id);
    if (resolve === undefined) return;
    this.waiting.delete(id);
    resolve(answer);
  }
}

function sendTo(worker: Worker, message: ToWorker): boolean {
  if (!worker.isConnected()) return false;
  worker.send(message);
  return true;
}

/** Whether TCP `port` is free on `ip` (the UDP groups got it first; TCP must share the number). */
function tcpPortFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createNetServer();
    probe.once("error", () => resolve(false));
    probe.listen({ port, host: ip, ipv6Only: ip.includes(":"), exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * Binds `count` members of the SO_REUSEPORT group of `ip`:`port` (port 0: a free port, the same
 * for all). With TCP on and port 0, a port TCP cannot share is given up and another tried.
 */
async function bindUdpGroup(ip: string, port: number, count: number, needTcp: boolean): Promise<{ port: number; fds: number[] }> {
  const family = ip.includes(":") ? 6 : 4;
  const attempts = port === 0 && needTcp ? PORT_ZERO_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    const fds: number[] = [];
    let bound = port;
    try {
      for (let member = 0; member < count; member++) {
        const shared = bindSharedUdpSocket(family, ip, bound, LISTENER_BUFFER_BYTES);
        fds.push(shared.fd);
        bound = shared.port;
      }
    } catch (error) {
      for (const fd of fds) closeSharedUdpSocket(fd);
      throw Object.assign(error as Error, { address: ip, port });
    }
    if (!needTcp || (await tcpPortFree(ip, bound))) return { port: bound, fds };
    for (const fd of fds) closeSharedUdpSocket(fd);
    if (attempt >= attempts) throw Object.assign(new Error("TCP port in use"), { code: "EADDRINUSE", address: ip, port: bound });
  }
}

export interface PrimaryOptions {
  config: RelayConfig;
  threads: number;
  /** The command line, read again on SIGHUP. */
  argv: readonly string[];
  log: RelayLogger;
  /** Fewer workers than --relay-threads auto wanted, and why (said in the listening line). */
  reduced?: { wanted: number; reason: string };
}

/**
 * Starts the workers and serves until a stop signal; resolves once every worker serves (after the
 * "listening" line). Throws PrimaryStartError (or a bind error with `code`, `address`, `port`) when the
 * relay cannot start; nothing is left running then.
 */
export async function runPrimary({ config: startConfig, threads, argv, log, reduced }: PrimaryOptions): Promise<void> {
  let config = startConfig;
  const slices = splitPortRange(config.minPort, config.maxPort, threads);
  const ledger = new AdmissionLedger(config);
  // Port reservations count against --user-quota too (as in one process: allocation-quotas.ts).
  const reservations = new AdmissionLedger({ userQuota: config.userQuota, maxAllocationsPerIp: 0, totalQuota: 0 });
  // The same per-source rule for TCP and TLS connections (--max-connections-per-ip): one hold per connection.
  const connections = new AdmissionLedger({ userQuota: 0, maxAllocationsPerIp: config.maxConnectionsPerIp, totalQuota: 0 });
  const pending = new PendingAnswers();
  // In a fleet: what the fleet reads of all workers, from their reports (./cluster-fleet.ts).
  const clusterFleet =
    config.fleet === null
      ? null
      : new ClusterFleet({
          allocations: () => ledger.total,
          maxHoldSeconds: config.maxCredentialTtl + config.credentialClockSkew,
          revokeInWorkers: async (revocations) => {
            const answers = await Promise.all(
              slots.map((slot) =>
                slot.worker !== null ? pending.ask(slot.worker, (id) => ({ type: "revoke", id, revocations: [...revocations] }), WORKER_ANSWER_TIMEOUT_MS) : Promise.resolve(null),
              ),
            );
            return answers.reduce((ended, answer) => ended + (answer?.type === "revoked" ? answer.outcome.ended : 0), 0);
          },
        });
  const nonceSecret = newNonceSecret().toString("hex");

  // The UDP groups, one per listening IP; member i of each goes to slot i.
  const groups: { ip: string; port: number; fds: number[] }[] = [];
  const streamPorts: Record<string, number> = {};
  try {
    for (const ip of config.listeningIps) {
      if (config.udp) {
        const group = await bindUdpGroup(ip, config.listeningPort, threads, config.tcp);
        groups.push({ ip, ...group });
        streamPorts[ip] = group.port;
      } else {
        streamPorts[ip] = config.listeningPort;
      }
    }
  } catch (error) {
    for (const group of groups) for (const fd of group.fds) closeSharedUdpSocket(fd);
    throw error;
  }
  const slots: Slot[] = slices.map((slice, index) => ({
    index,
    seat: {
      slot: index,
      ...slice,
      udp: groups.map((group, listener): SeatUdpListener => ({ ip: group.ip, port: group.port, fd: FIRST_INHERITED_FD + listener })),
      streamPorts,
      nonceSecret,
    },
    fds: groups.map((group) => group.fds[index]!),
    worker: null,
    ready: false,
    startedAt: 0,
    quickDeaths: 0,
  }));

  const registry = new Registry();
  const processMetrics = registerProcessMetrics(registry);
  const restarts = new Counter({
    name: `${METRIC_PREFIX}worker_restarts_total`,
    help: "Worker processes that died and were started again (--relay-threads); each took its allocations with it.",
    registers: [registry],
  });
  new Gauge({
    name: `${METRIC_PREFIX}workers`,
    help: "Worker processes serving now (--relay-threads).",
    registers: [registry],
    collect() {
      this.set(slots.filter((slot) => slot.ready).length);
    },
  });

  let listeners: ListenerAddress[] = [];
  let stopping = false;
  let draining = false;
  let started = false;
  let onAllReady: (() => void) | null = null;
  let onStartFailure: ((error: Error) => void) | null = null;
  const onWorkerGone = new Set<() => void>();
  const loans = new PortLoans<Worker>();
  /** Tells the lender a port is back, if the worker that lent it still runs (a restarted one has all its ports free). */
  const tellLender = (port: number, loan: Loan<Worker>) => {
    if (slots[loan.lender]?.worker === loan.incarnation) sendTo(loan.incarnation, { type: "given-back", port });
  };
  const borrow = async (borrower: Slot, worker: Worker, id: number, tokenHex: string) => {
    const lender = slots[slotOfToken(Buffer.from(tokenHex, "hex"))];
    const lenderWorker = lender?.worker ?? null;
    let answer: ToPrimary | null = null;
    if (lender !== undefined && lender !== borrower && lenderWorker !== null && lender.ready) {
      answer = await pending.ask(lenderWorker, (askId) => ({ type: "lend", id: askId, token: tokenHex }), WORKER_ANSWER_TIMEOUT_MS);
    }
    const lent = answer?.type === "lent" ? answer.lent : null;
    if (lent !== null) loans.lend(lent.port, { lender: lender!.index, incarnation: lenderWorker!, borrower: borrower.index });
    // The borrower died meanwhile: the loan ends at once.
    if (!sendTo(worker, { type: "borrowed", id, lent: lent === null ? null : { lender: lender!.index, ...lent } }) && lent !== null) {
      const loan = loans.giveBack(lent.port, borrower.index);
      if (loan !== undefined) tellLender(lent.port, loan);
    }
  };

  const handle = (slot: Slot, worker: Worker, message: unknown) => {
    // Node's own cluster messages share the channel; ours all have a string `type`.
    if (messageType(message) === null) return;
    const from = message as ToPrimary;
    switch (from.type) {
      case "waiting":
        sendTo(worker, { type: "start", config, seat: slot.seat, revocations: clusterFleet?.activeRevocations() ?? [] });
        return;
      case "ready":
        slot.ready = true;
        listeners = from.listeners;
        if (started) log.info({ event: "worker-restarted", worker: slot.index, pid: worker.process.pid });
        if (slots.every((each) => each.ready)) onAllReady?.();
        return;
      case "admit":
        sendTo(worker, { type: "admission", id: from.id, admission: ledger.admit(slot.index, from.user, from.address) });
        return;
      case "release":
        ledger.release(from.hold);
        return;
      case "admit-reservation":
        sendTo(worker, { type: "admission", id: from.id, admission: reservations.admit(slot.index, from.user, "") });
        return;
      case "release-reservation":
        reservations.release(from.hold);
        return;
      case "connect": {
        const admitted = connections.admit(slot.index, "", from.address);
        sendTo(worker, { type: "connection", id: from.id, hold: admitted.ok ? admitted.hold : null });
        return;
      }
      case "disconnect":
        connections.release(from.hold);
        return;
      case "borrow":
        void borrow(slot, worker, from.id, from.token);
        return;
      case "give-back": {
        const loan = loans.giveBack(from.port, slot.index);
        if (loan !== undefined) tellLender(from.port, loan);
        return;
      }
      case "report":
        clusterFleet?.report(slot.index, from);
        return;
      case "member-opened":
        clusterFleet?.memberOpened(slot.index, from.id, from.room, from.peerId, from.createdAt);
        return;
      case "member-ended":
        clusterFleet?.memberEnded(slot.index, from.id, from.bytesToPeers, from.bytesToClient, from.endedAt);
        return;
      case "metrics":
      case "reloaded":
      case "revoked":
      case "lent":
        pending.settle(from.id, from);
        return;
    }
  };

  const fork = (slot: Slot) => {
    cluster.setupPrimary({ stdio: ["ignore", "inherit", "inherit", "ipc", ...slot.fds] });
    const worker = cluster.fork();
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    worker.on("message", (message: unknown) => handle(slot, worker, message));
    // An IPC error (a worker gone mid-send) is the 'exit' handler's business.
    worker.on("error", () => {});
    worker.on("exit", (code, signal) => {
      if (slot.worker === worker) {
        slot.worker = null;
        slot.ready = false;
      }
      const ended = ledger.releaseSlot(slot.index);
      clusterFleet?.workerGone(slot.index);
      connections.releaseSlot(slot.index);
      reservations.releaseSlot(slot.index);
      // What it borrowed closed with it; what it lent, its successor has free in a fresh pool.
      for (const [port, loan] of loans.workerGone(slot.index)) tellLender(port, loan);
      for (const notify of [...onWorkerGone]) notify();
      if (stopping) return;
      if (!started) {
        onStartFailure?.(new PrimaryStartError(`worker ${slot.index} exited before it served (${signal ?? `exit code ${code}`}); its message is above`));
        return;
      }
      const lived = Date.now() - slot.startedAt;
      slot.quickDeaths = lived >= STABLE_AFTER_MS ? 0 : slot.quickDeaths + 1;
      const delay = slot.quickDeaths === 0 ? 0 : Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1));
      restarts.inc();
      log.error({
        event: "worker-exited",
        worker: slot.index,
        pid: worker.process.pid,
        ...(signal !== null ? { signal } : { code }),
        allocationsEnded: ended,
        restartInMs: delay,
        advice: "the worker's allocations ended with it; their clients allocate again. A worker that keeps dying is a bug to report with the lines above",
      });
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, delay).unref();
    });
  };

  const closeGroups = () => {
    for (const group of groups) for (const fd of group.fds.splice(0)) closeSharedUdpSocket(fd);
  };
  const killAll = () => {
    for (const slot of slots) slot.worker?.process.kill("SIGKILL");
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new PrimaryStartError(`the worker processes did not all serve within ${WORKER_READY_TIMEOUT_MS} ms`)), WORKER_READY_TIMEOUT_MS);
      onAllReady = () => {
        clearTimeout(timer);
        resolve();
      };
      onStartFailure = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      for (const slot of slots) fork(slot);
    });
  } catch (error) {
    stopping = true;
    killAll();
    closeGroups();
    throw error;
  }
  started = true;
  onAllReady = null;
  onStartFailure = null;

  const readiness = (): Readiness => {
    const problems: string[] = [];
    const starting = slots.filter((slot) => !slot.ready).map((slot) => slot.index);
    if (starting.length > 0) problems.push(`worker ${starting.join(", ")} not serving (restarting)`);
    if (draining) problems.push("draining: new allocations are refused");
    return { ready: problems.length === 0, problems };
  };

  const metrics = async (): Promise<{ contentType: string; body: string }> => {
    const answers = await Promise.all(
      slots.map((slot) => (slot.worker !== null && slot.ready ? pending.ask(slot.worker, (id) => ({ type: "metrics", id }), WORKER_ANSWER_TIMEOUT_MS) : Promise.resolve(null))),
    );
    const workers = answers.flatMap((answer): WorkerMetrics[] => (answer?.type === "metrics" ? [answer.metrics] : []));
    const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...workers]);
    return { contentType: registry.contentType, body: await merged.metrics() };
  };

  const fleet: RelayFleet | null =
    config.fleet === null || clusterFleet === null
      ? null
      : createRelayFleet(config, config.fleet, clusterFleet, listeners, { info: (line) => log.info(line), warn: (line) => log.warn(line) });
  registerFleetMetrics(registry, fleet?.client ?? null, fleet?.usage ?? null);

  let metricsToken = config.prometheus?.token ?? null;
  let ops: OpsListener | null = null;
  if (config.prometheus !== null) {
    try {
      ops = await startOpsListener({ address: config.prometheus.address, port: config.prometheus.port, token: () => metricsToken, readiness, metrics });
    } catch (error) {
      stopping = true;
      killAll();
      closeGroups();
      const { code } = error as NodeJS.ErrnoException;
      throw new PrimaryStartError(
        `cannot listen for metrics on ${config.prometheus.address}:${config.prometheus.port} (${code ?? String(error)}); check --prometheus-address and --prometheus-port`,
      );
    }
  }

  log.info({
    event: "listening",
    listeners,
    udpIo: "native",
    relayThreads: threads,
    ...(reduced !== undefined && { relayThreadsReduced: reduced }),
    workers: slots.map((slot) => ({ worker: slot.index, pid: slot.worker?.process.pid, relayPorts: `${slot.seat.minPort}-${slot.seat.maxPort}` })),
    relayPorts: `${config.minPort}-${config.maxPort}`,
    realm: config.realm,
    ...(ops !== null && { metrics: { address: ops.address, port: ops.port } }),
    ...(fleet !== null && { fleet: { url: config.fleet!.url, relayId: config.fleet!.relayId, urls: fleet.urls, usageBoot: fleet.usage.boot } }),
  });
  handleUncaughtErrors(process, { log: (line) => log.error(line), count: (kind) => processMetrics.countUncaughtError(kind) });
  // After the listening line: the fleet hands the relay out only once it serves.
  fleet?.client.start();

  const workersLeft = () => slots.filter((slot) => slot.worker !== null).length;
  const whenWorkersGone = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      const check = () => {
        if (workersLeft() > 0) return;
        finish(true);
      };
      const finish = (gone: boolean) => {
        clearTimeout(timer);
        onWorkerGone.delete(check);
        resolve(gone);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      onWorkerGone.add(check);
      check();
    });

  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ event: "stopping-now", signal, allocations: ledger.total });
      killAll();
      process.exit(1);
    }
    stopping = true;
    draining = true;
    // Before any wait: the fleet stops handing this relay out and moves its rooms' calls elsewhere.
    fleet?.client.setState("draining");
    const live = ledger.total;
    log.info({ event: "stopping", signal, allocations: live, drainTimeoutSeconds: config.drainTimeoutSeconds, relayThreads: threads });
    for (const slot of slots) if (slot.worker !== null) sendTo(slot.worker, { type: "drain" });
    // Every worker keeps answering (508 to a new Allocate) until all allocations, on every worker, have ended.
    if (config.drainTimeoutSeconds > 0 && live > 0) {
      const deadline = Date.now() + config.drainTimeoutSeconds * 1000;
      while (ledger.total > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      log.info({ event: "drained", reason: ledger.total === 0 ? "every allocation ended" : "drain timeout", allocations: ledger.total });
    }
    for (const slot of slots) if (slot.worker !== null) sendTo(slot.worker, { type: "stop" });
    if (!(await whenWorkersGone(WORKER_STOP_GRACE_MS))) {
      log.warn({ event: "workers-killed", workers: workersLeft(), reason: `not gone ${WORKER_STOP_GRACE_MS} ms after they were told to stop` });
      killAll();
      await whenWorkersGone(WORKER_STOP_GRACE_MS);
    }
    closeGroups();
    // After the workers: their allocations' final usage is in.
    await fleet?.stop();
    await ops?.close();
    process.exit(0);
  };

  const reload = async () => {
    try {
      const parsed = parseRelayArgs(argv, process.env);
      if (parsed.help) return;
      const next = parsed.config;
      // Checked here first, so a bad file changes no worker.
      const tls = readReloadedTls(next, listeners.some((listener) => listener.transport === "tls")) !== null;
      const settings = { secrets: next.secrets, certFile: next.certFile, keyFile: next.keyFile };
      const answers = await Promise.all(
        slots.map((slot) => (slot.worker !== null ? pending.ask(slot.worker, (id) => ({ type: "reload", id, settings }), WORKER_ANSWER_TIMEOUT_MS) : Promise.resolve(null))),
      );
      const failures = answers.flatMap((answer, slot) => (answer?.type === "reloaded" && answer.ok ? [] : [`worker ${slot}: ${answer?.type === "reloaded" && !answer.ok ? answer.error : "no answer"}`]));
      // A worker restarted from now on starts with what was reloaded.
      config = { ...config, ...settings };
      metricsToken = next.prometheus?.token ?? null;
      if (fleet !== null && next.fleet !== null) fleet.setKeys(next.fleet.keys);
      if (failures.length > 0) {
        // The files were good here, so this is a worker that could not be reached or a file changed meanwhile.
        processMetrics.countReload("failed");
        log.error({ event: "reload-failed", error: failures.join("; "), keeping: "the other workers took the new settings; send SIGHUP again" });
        return;
      }
      processMetrics.countReload("ok");
      log.info({
        event: "reloaded",
        secretCount: settings.secrets.length,
        tls,
        metricsToken: metricsToken !== null,
        workers: answers.length,
        ...(fleet !== null && { fleetKeys: next.fleet?.keys.length ?? 0 }),
      });
    } catch (error) {
      processMetrics.countReload("failed");
      log.error({ event: "reload-failed", error: error instanceof Error ? error.message : String(error), keeping: "the running secrets and certificate" });
    }
  };

  const stopOrExit = (signal: NodeJS.Signals) =>
    stop(signal).catch((error: unknown) => {
      log.error({ event: "stop-failed", signal, error: error instanceof Error ? error.message : String(error) });
      killAll();
      process.exit(1);
    });
  process.on("SIGINT", stopOrExit);
  process.on("SIGTERM", stopOrExit);
  process.on("SIGUSR1", stopOrExit);
  process.on("SIGHUP", () => void reload());
}
