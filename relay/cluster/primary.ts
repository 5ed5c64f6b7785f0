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
import { AggregatorRegistry, Counter, Gauge, Registry } from "prom-client";
import { newNonceSecret } from "../auth/nonce.js";
import { parseRelayArgs, type RelayConfig } from "../config.js";
import { createRelayFleet, type RelayFleet } from "../fleet/relay-fleet.js";
import { startOpsListener, type OpsListener } from "../ops/http.js";
import type { RelayLogger } from "../ops/log.js";
import { METRIC_PREFIX, registerFleetMetrics, registerProcessMetrics, type RelayMetrics } from "../ops/metrics.js";
import { handleUncaughtErrors } from "../ops/process-errors.js";
import { readReloadedTls, type ListenerAddress, type Readiness } from "../server/relay-server.js";
import { AdmissionLedger } from "./admission-ledger.js";
import { ClusterFleet } from "./cluster-fleet.js";
import { messageType, type ToPrimary, type ToWorker, type WorkerMetrics } from "./messages.js";
import { PortLoans, type Loan } from "./port-loans.js";
import { slotOfToken, splitPortRange, type WorkerSeat } from "./seat.js";
import { bindListenerGroups, closeListenerGroups, type ListenerGroups } from "./udp-groups.js";

/** Every worker must say it serves within this, at start. */
export const WORKER_READY_TIMEOUT_MS = 30_000;
/** A worker that does not answer a metrics scrape, a reload or a revocation within this is left out of it. */
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
/** The first inherited descriptor in a worker: 0-2 are stdio, 3 is the cluster's IPC channel. */
const FIRST_INHERITED_FD = 4;

export class PrimaryStartError extends Error {
  override name = "PrimaryStartError";
}

interface Slot {
  readonly index: number;
  readonly seat: WorkerSeat;
  /** This process's descriptors of the slot's UDP members, in seat.udp's order. */
  readonly fds: number[];
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  /** Deaths in a row, each soon after a start: the next restart waits longer. */
  quickDeaths: number;
}

function sendTo(worker: Worker, message: ToWorker): boolean {
  if (!worker.isConnected()) return false;
  worker.send(message);
  return true;
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

export interface PrimaryOptions {
  config: RelayConfig;
  threads: number;
  /** The command line, read again on SIGHUP. */
  argv: readonly string[];
  log: RelayLogger;
  /** Fewer workers than --relay-threads auto wanted, and why (said in the listening line). */
  reduced?: { wanted: number; reason: string };
}

class RelayPrimary {
  private config: RelayConfig;
  private readonly slots: Slot[];
  /** Allocations of all workers (--user-quota, --max-allocations-per-ip, --total-quota). */
  private readonly allocations: AdmissionLedger;
  /** Port reservations count against --user-quota too (as in one process: allocation-quotas.ts). */
  private readonly reservations: AdmissionLedger;
  /** TCP and TLS connections by source (--max-connections-per-ip): the same per-source rule. */
  private readonly connections: AdmissionLedger;
  private readonly loans = new PortLoans<Worker>();
  private readonly pending = new PendingAnswers();
  /** In a fleet: what the fleet reads of all workers, from their reports (./cluster-fleet.ts). */
  private readonly clusterFleet: ClusterFleet | null;
  private fleet: RelayFleet | null = null;
  private ops: OpsListener | null = null;
  private metricsToken: string | null;
  private readonly registry = new Registry();
  private readonly processMetrics: Omit<RelayMetrics, "registry">;
  private readonly restarts: Counter;
  private listeners: ListenerAddress[] = [];
  private started = false;
  private stopping = false;
  private draining = false;
  /** Called when every slot serves (the start waits for it), or with why the start failed. */
  private startWaiter: { ready(): void; failed(error: Error): void } | null = null;
  private readonly onWorkerGone = new Set<() => void>();

  constructor(
    private readonly options: PrimaryOptions,
    private readonly listenerGroups: ListenerGroups,
  ) {
    const config = options.config;
    this.config = config;
    this.metricsToken = config.prometheus?.token ?? null;
    this.allocations = new AdmissionLedger(config);
    this.reservations = new AdmissionLedger({ userQuota: config.userQuota, maxAllocationsPerIp: 0, totalQuota: 0 });
    this.connections = new AdmissionLedger({ userQuota: 0, maxAllocationsPerIp: config.maxConnectionsPerIp, totalQuota: 0 });
    const nonceSecret = newNonceSecret().toString("hex");
    const { groups, streamPorts } = listenerGroups;
    this.slots = splitPortRange(config.minPort, config.maxPort, options.threads).map((slice, index) => ({
      index,
      seat: {
        slot: index,
        ...slice,
        udp: groups.map((group, listener) => ({ ip: group.ip, port: group.port, fd: FIRST_INHERITED_FD + listener })),
        streamPorts,
        nonceSecret,
      },
      fds: groups.map((group) => group.fds[index]!),
      worker: null,
      ready: false,
      startedAt: 0,
      quickDeaths: 0,
    }));
    this.clusterFleet =
      config.fleet === null
        ? null
        : new ClusterFleet({
            allocations: () => this.allocations.total,
            maxHoldSeconds: config.maxCredentialTtl + config.credentialClockSkew,
            revokeInWorkers: async (revocations) => {
              const answers = await this.askAll((id) => ({ type: "revoke", id, revocations: [...revocations] }));
              return answers.reduce((ended, answer) => ended + (answer?.type === "revoked" ? answer.outcome.ended : 0), 0);
            },
          });
    this.processMetrics = registerProcessMetrics(this.registry);
    this.restarts = new Counter({
      name: `${METRIC_PREFIX}worker_restarts_total`,
      help: "Worker processes that died and were started again (--relay-threads); each took its allocations with it.",
      registers: [this.registry],
    });
    const slots = this.slots;
    new Gauge({
      name: `${METRIC_PREFIX}workers`,
      help: "Worker processes serving now (--relay-threads).",
      registers: [this.registry],
      collect() {
        this.set(slots.filter((slot) => slot.ready).length);
      },
    });
  }

  /** Starts every worker, then the fleet and the ops listener; logs "listening". Throws PrimaryStartError. */
  async start(): Promise<void> {
    const { config, log } = this.options;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new PrimaryStartError(`the worker processes did not all serve within ${WORKER_READY_TIMEOUT_MS} ms`)), WORKER_READY_TIMEOUT_MS);
        this.startWaiter = {
          ready: () => {
            clearTimeout(timer);
            resolve();
          },
          failed: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
        for (const slot of this.slots) this.fork(slot);
      });
    } catch (error) {
      this.abandon();
      throw error;
    } finally {
      this.startWaiter = null;
    }
    this.started = true;

    const fleet =
      config.fleet === null || this.clusterFleet === null
        ? null
        : createRelayFleet(config, config.fleet, this.clusterFleet, this.listeners, { info: (line) => log.info(line), warn: (line) => log.warn(line) });
    this.fleet = fleet;
    registerFleetMetrics(this.registry, fleet?.client ?? null, fleet?.usage ?? null);
    if (config.prometheus !== null) {
      try {
        this.ops = await startOpsListener({
          address: config.prometheus.address,
          port: config.prometheus.port,
          token: () => this.metricsToken,
          readiness: () => this.readiness(),
          metrics: () => this.metrics(),
        });
      } catch (error) {
        this.abandon();
        const { code } = error as NodeJS.ErrnoException;
        throw new PrimaryStartError(
          `cannot listen for metrics on ${config.prometheus.address}:${config.prometheus.port} (${code ?? String(error)}); check --prometheus-address and --prometheus-port`,
        );
      }
    }

    log.info({
      event: "listening",
      listeners: this.listeners,
      udpIo: "native",
      relayThreads: this.options.threads,
      ...(this.options.reduced !== undefined && { relayThreadsReduced: this.options.reduced }),
      workers: this.slots.map((slot) => ({ worker: slot.index, pid: slot.worker?.process.pid, relayPorts: `${slot.seat.minPort}-${slot.seat.maxPort}` })),
      relayPorts: `${config.minPort}-${config.maxPort}`,
      realm: config.realm,
      ...(this.ops !== null && { metrics: { address: this.ops.address, port: this.ops.port } }),
      ...(fleet !== null && { fleet: { url: config.fleet!.url, relayId: config.fleet!.relayId, urls: fleet.urls, usageBoot: fleet.usage.boot } }),
    });
    handleUncaughtErrors(process, { log: (line) => log.error(line), count: (kind) => this.processMetrics.countUncaughtError(kind) });
    // After the listening line: the fleet hands the relay out only once it serves.
    fleet?.client.start();

    const stopOrExit = (signal: NodeJS.Signals) =>
      this.stop(signal).catch((error: unknown) => {
        log.error({ event: "stop-failed", signal, error: error instanceof Error ? error.message : String(error) });
        this.killAll();
        process.exit(1);
      });
    process.on("SIGINT", stopOrExit);
    process.on("SIGTERM", stopOrExit);
    process.on("SIGUSR1", stopOrExit);
    process.on("SIGHUP", () => void this.reload());
  }

  // ---------------------------------------------------------------------------------------------
  // Workers

  private fork(slot: Slot): void {
    cluster.setupPrimary({ stdio: ["ignore", "inherit", "inherit", "ipc", ...slot.fds] });
    const worker = cluster.fork();
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    worker.on("message", (message: unknown) => this.handle(slot, worker, message));
    // An IPC error (a worker gone mid-send) is the 'exit' handler's business.
    worker.on("error", () => {});
    worker.on("exit", (code: number | null, signal: string | null) => this.exited(slot, worker, code, signal as NodeJS.Signals | null));
  }

  /** A worker is gone: what it held is given back; it is restarted unless the relay stops. */
  private exited(slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.worker === worker) {
      slot.worker = null;
      slot.ready = false;
    }
    const ended = this.allocations.releaseSlot(slot.index);
    this.connections.releaseSlot(slot.index);
    this.reservations.releaseSlot(slot.index);
    this.clusterFleet?.workerGone(slot.index);
    // What it borrowed closed with it; what it lent, its successor has free in a fresh pool.
    for (const [port, loan] of this.loans.workerGone(slot.index)) this.tellLender(port, loan);
    for (const notify of [...this.onWorkerGone]) notify();
    if (this.stopping) return;
    if (!this.started) {
      this.startWaiter?.failed(new PrimaryStartError(`worker ${slot.index} exited before it served (${signal ?? `exit code ${code}`}); its message is above`));
      return;
    }
    const lived = Date.now() - slot.startedAt;
    slot.quickDeaths = lived >= STABLE_AFTER_MS ? 0 : slot.quickDeaths + 1;
    const delay = slot.quickDeaths === 0 ? 0 : Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1));
    this.restarts.inc();
    this.options.log.error({
      event: "worker-exited",
      worker: slot.index,
      pid: worker.process.pid,
      ...(signal !== null ? { signal } : { code }),
      allocationsEnded: ended,
      restartInMs: delay,
      advice: "the worker's allocations ended with it; their clients allocate again. A worker that keeps dying is a bug to report with the lines above",
    });
    setTimeout(() => {
      if (!this.stopping) this.fork(slot);
    }, delay).unref();
  }

  private handle(slot: Slot, worker: Worker, message: unknown): void {
    // Node's own cluster messages share the channel; ours all have a string `type`.
    if (messageType(message) === null) return;
    const from = message as ToPrimary;
    switch (from.type) {
      case "waiting":
        sendTo(worker, { type: "start", config: this.config, seat: slot.seat, revocations: this.clusterFleet?.activeRevocations() ?? [] });
        return;
      case "ready":
        slot.ready = true;
        this.listeners = from.listeners;
        if (this.started) this.options.log.info({ event: "worker-restarted", worker: slot.index, pid: worker.process.pid });
        if (this.slots.every((each) => each.ready)) this.startWaiter?.ready();
        return;
      case "admit":
        sendTo(worker, { type: "admission", id: from.id, admission: this.allocations.admit(slot.index, from.user, from.address) });
        return;
      case "release":
        this.allocations.release(from.hold);
        return;
      case "admit-reservation":
        sendTo(worker, { type: "admission", id: from.id, admission: this.reservations.admit(slot.index, from.user, "") });
        return;
      case "release-reservation":
        this.reservations.release(from.hold);
        return;
      case "connect": {
        const admitted = this.connections.admit(slot.index, "", from.address);
        sendTo(worker, { type: "connection", id: from.id, hold: admitted.ok ? admitted.hold : null });
        return;
      }
      case "disconnect":
        this.connections.release(from.hold);
        return;
      case "borrow":
        void this.borrow(slot, worker, from.id, from.token);
        return;
      case "give-back": {
        const loan = this.loans.giveBack(from.port, slot.index);
        if (loan !== undefined) this.tellLender(from.port, loan);
        return;
      }
      case "report":
        this.clusterFleet?.report(slot.index, from);
        return;
      case "member-opened":
        this.clusterFleet?.memberOpened(slot.index, from.id, from.room, from.peerId, from.createdAt);
        return;
      case "member-ended":
        this.clusterFleet?.memberEnded(slot.index, from.id, from.bytesToPeers, from.bytesToClient, from.endedAt);
        return;
      case "metrics":
      case "reloaded":
      case "revoked":
      case "lent":
        this.pending.settle(from.id, from);
        return;
    }
  }

  /** A RESERVATION-TOKEN's Allocate reached `borrower`: the holder (the token's first byte) lends the port, or nobody does. */
  private async borrow(borrower: Slot, worker: Worker, id: number, tokenHex: string): Promise<void> {
    const lender = this.slots[slotOfToken(Buffer.from(tokenHex, "hex"))];
    const lenderWorker = lender?.worker ?? null;
    let answer: ToPrimary | null = null;
    if (lender !== undefined && lender !== borrower && lenderWorker !== null && lender.ready) {
      answer = await this.pending.ask(lenderWorker, (askId) => ({ type: "lend", id: askId, token: tokenHex }), WORKER_ANSWER_TIMEOUT_MS);
    }
    const lent = answer?.type === "lent" ? answer.lent : null;
    if (lent !== null) this.loans.lend(lent.port, { lender: lender!.index, incarnation: lenderWorker!, borrower: borrower.index });
    // The borrower died meanwhile: the loan ends at once.
    if (!sendTo(worker, { type: "borrowed", id, lent: lent === null ? null : { lender: lender!.index, ...lent } }) && lent !== null) {
      const loan = this.loans.giveBack(lent.port, borrower.index);
      if (loan !== undefined) this.tellLender(lent.port, loan);
    }
  }

  /** Tells the lender a port is back, if the worker that lent it still runs (a restarted one has all its ports free). */
  private tellLender(port: number, loan: Loan<Worker>): void {
    if (this.slots[loan.lender]?.worker === loan.incarnation) sendTo(loan.incarnation, { type: "given-back", port });
  }

  /** Asks every running worker; one answer (or null: none in time) per slot. */
  private askAll(build: (id: number) => ToWorker, onlyReady = false): Promise<(ToPrimary | null)[]> {
    return Promise.all(
      this.slots.map((slot) =>
        slot.worker !== null && (!onlyReady || slot.ready) ? this.pending.ask(slot.worker, build, WORKER_ANSWER_TIMEOUT_MS) : Promise.resolve(null),
      ),
    );
  }

  private workersLeft(): number {
    return this.slots.filter((slot) => slot.worker !== null).length;
  }

  private whenWorkersGone(timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const check = () => {
        if (this.workersLeft() === 0) finish(true);
      };
      const finish = (gone: boolean) => {
        clearTimeout(timer);
        this.onWorkerGone.delete(check);
        resolve(gone);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.onWorkerGone.add(check);
      check();
    });
  }

  private killAll(): void {
    for (const slot of this.slots) slot.worker?.process.kill("SIGKILL");
  }

  /** A start that failed: every worker killed, every socket closed. */
  private abandon(): void {
    this.stopping = true;
    this.killAll();
    closeListenerGroups(this.listenerGroups.groups);
  }

  // ---------------------------------------------------------------------------------------------
  // Operations

  private readiness(): Readiness {
    const problems: string[] = [];
    const starting = this.slots.filter((slot) => !slot.ready).map((slot) => slot.index);
    if (starting.length > 0) problems.push(`worker ${starting.join(", ")} not serving (restarting)`);
    if (this.draining) problems.push("draining: new allocations are refused");
    return { ready: problems.length === 0, problems };
  }

  /** One page: this process's metrics and every serving worker's, summed (prom-client's aggregate). */
  private async metrics(): Promise<{ contentType: string; body: string }> {
    const answers = await this.askAll((id) => ({ type: "metrics", id }), true);
    const workers = answers.flatMap((answer): WorkerMetrics[] => (answer?.type === "metrics" ? [answer.metrics] : []));
    const merged = AggregatorRegistry.aggregate([await this.registry.getMetricsAsJSON(), ...workers]);
    return { contentType: this.registry.contentType, body: await merged.metrics() };
  }

  /**
   * SIGTERM, SIGINT, SIGUSR1: every worker drains and keeps serving until the allocations of all of
   * them have ended (or --drain-timeout), then stops; a second signal exits at once.
   */
  private async stop(signal: NodeJS.Signals): Promise<void> {
    const { log } = this.options;
    const config = this.config;
    if (this.stopping) {
      log.warn({ event: "stopping-now", signal, allocations: this.allocations.total });
      this.killAll();
      process.exit(1);
    }
    this.stopping = true;
    this.draining = true;
    // Before any wait: the fleet stops handing this relay out and moves its rooms' calls elsewhere.
    this.fleet?.client.setState("draining");
    const live = this.allocations.total;
    log.info({ event: "stopping", signal, allocations: live, drainTimeoutSeconds: config.drainTimeoutSeconds, relayThreads: this.options.threads });
    for (const slot of this.slots) if (slot.worker !== null) sendTo(slot.worker, { type: "drain" });
    if (config.drainTimeoutSeconds > 0 && live > 0) {
      const deadline = Date.now() + config.drainTimeoutSeconds * 1000;
      while (this.allocations.total > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      log.info({ event: "drained", reason: this.allocations.total === 0 ? "every allocation ended" : "drain timeout", allocations: this.allocations.total });
    }
    for (const slot of this.slots) if (slot.worker !== null) sendTo(slot.worker, { type: "stop" });
    if (!(await this.whenWorkersGone(WORKER_STOP_GRACE_MS))) {
      log.warn({ event: "workers-killed", workers: this.workersLeft(), reason: `not gone ${WORKER_STOP_GRACE_MS} ms after they were told to stop` });
      this.killAll();
      await this.whenWorkersGone(WORKER_STOP_GRACE_MS);
    }
    closeListenerGroups(this.listenerGroups.groups);
    // After the workers: their allocations' final usage is in.
    await this.fleet?.stop();
    await this.ops?.close();
    process.exit(0);
  }

  /** SIGHUP: the options read again and checked here first, so a bad file changes no worker; then every worker takes them. */
  private async reload(): Promise<void> {
    const { log } = this.options;
    try {
      const parsed = parseRelayArgs(this.options.argv, process.env);
      if (parsed.help) return;
      const next = parsed.config;
      const tls = readReloadedTls(next, this.listeners.some((listener) => listener.transport === "tls")) !== null;
      const settings = { secrets: next.secrets, certFile: next.certFile, keyFile: next.keyFile };
      const answers = await this.askAll((id) => ({ type: "reload", id, settings }));
      const failures = answers.flatMap((answer, slot) => (answer?.type === "reloaded" && answer.ok ? [] : [`worker ${slot}: ${answer?.type === "reloaded" && !answer.ok ? answer.error : "no answer"}`]));
      // A worker restarted from now on starts with what was reloaded.
      this.config = { ...this.config, ...settings };
      this.metricsToken = next.prometheus?.token ?? null;
      if (this.fleet !== null && next.fleet !== null) this.fleet.setKeys(next.fleet.keys);
      if (failures.length > 0) {
        // The files were good here, so this is a worker that could not be reached or a file changed meanwhile.
        this.processMetrics.countReload("failed");
        log.error({ event: "reload-failed", error: failures.join("; "), keeping: "the other workers took the new settings; send SIGHUP again" });
        return;
      }
      this.processMetrics.countReload("ok");
      log.info({
        event: "reloaded",
        secretCount: settings.secrets.length,
        tls,
        metricsToken: this.metricsToken !== null,
        workers: answers.length,
        ...(this.fleet !== null && { fleetKeys: next.fleet?.keys.length ?? 0 }),
      });
    } catch (error) {
      this.processMetrics.countReload("failed");
      log.error({ event: "reload-failed", error: error instanceof Error ? error.message : String(error), keeping: "the running secrets and certificate" });
    }
  }
}

/**
 * Binds the listeners, starts the workers and serves until a stop signal; resolves once every worker
 * serves (after the "listening" line). Throws PrimaryStartError, a SeatError (the port range is too
 * small), or a bind error with `code`, `address`, `port`, with nothing left running.
 */
export async function runPrimary(options: PrimaryOptions): Promise<void> {
  // Checked before anything is bound: a range too small for the workers is the operator's to fix.
  splitPortRange(options.config.minPort, options.config.maxPort, options.threads);
  const groups = await bindListenerGroups(options.config, options.threads);
  await new RelayPrimary(options, groups).start();
}
