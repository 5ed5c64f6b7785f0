/**
 * A worker process of a relay with several (`--relay-threads N`; the primary is ./primary.ts,
 * the plan docs/design/relay-workers.md). It relays like a one-process relay, with three
 * differences:
 *
 *   - its UDP listeners are its members of the primary's SO_REUSEPORT groups (inherited file
 *     descriptors), its TCP and TLS listeners the cluster's shared handles, and its relay ports
 *     its own slice of the range;
 *   - before each allocation it asks the primary, which holds the quotas of every worker;
 *   - signals are the primary's business: the worker drains, reloads, revokes and reports metrics
 *     when the primary says so, and exits when the primary is gone.
 *
 * Its log lines go to the stdout all processes share, each with `worker: <slot>`.
 */
import { Registry } from "prom-client";
import { createRelayLogger, type RelayLogger } from "../ops/log.js";
import { registerProcessMetrics, registerServerMetrics } from "../ops/metrics.js";
import { handleUncaughtErrors } from "../ops/process-errors.js";
import { RelayServer } from "../server/relay-server.js";
import type { Admission } from "./admission-ledger.js";
import { isMessage, type ToPrimary, type ToWorker } from "./messages.js";
import { REPORT_INTERVAL_MS, type WorkerReport } from "./cluster-fleet.js";
import { trafficSoFar } from "../server/stats.js";
import type { MeteredAllocation } from "../fleet/usage-ledger.js";

type StartMessage = Extract<ToWorker, { type: "start" }>;
import type { LentPort, PrimaryLink } from "./seat.js";

/** How long a worker waits for its start message, and for the primary to answer an admission. */
export const START_MESSAGE_TIMEOUT_MS = 30_000;
export const ADMISSION_TIMEOUT_MS = 5_000;

function send(message: ToPrimary): void {
  // The channel may be gone (the primary died): the 'disconnect' handler ends this process.
  if (process.connected) process.send!(message);
}

/** The primary, asked over IPC; answers (`admission`, `borrowed`) arrive as messages with the request's id. */
class IpcPrimary implements PrimaryLink {
  private nextId = 1;
  private readonly waiting = new Map<number, (answer: unknown) => void>();

  admit(user: string, address: string): Promise<Admission | null> {
    return this.ask((id) => ({ type: "admit", id, user, address }));
  }

  release(hold: number): void {
    send({ type: "release", hold });
  }

  admitReservation(user: string): Promise<Admission | null> {
    return this.ask((id) => ({ type: "admit-reservation", id, user }));
  }

  releaseReservation(hold: number): void {
    send({ type: "release-reservation", hold });
  }

  borrowReserved(token: Buffer): Promise<LentPort | null> {
    return this.ask((id) => ({ type: "borrow", id, token: token.toString("hex") }));
  }

  giveBack({ lender, port }: Pick<LentPort, "lender" | "port">): void {
    send({ type: "give-back", lender, port });
  }

  async admitConnection(address: string): Promise<number | "refused" | null> {
    const answer = await this.ask<{ hold: number | null }>((id) => ({ type: "connect", id, address }));
    return answer === null ? null : (answer.hold ?? "refused");
  }

  releaseConnection(hold: number): void {
    send({ type: "disconnect", hold });
  }

  settle(id: number, answer: unknown): void {
    const resolve = this.waiting.get(id);
    if (resolve === undefined) return;
    this.waiting.delete(id);
    resolve(answer);
  }

  /** Resolves with the answer, or null when none came within ADMISSION_TIMEOUT_MS. */
  private ask<T>(build: (id: number) => ToPrimary): Promise<T | null> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(id, null), ADMISSION_TIMEOUT_MS);
      this.waiting.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer as T | null);
      });
      send(build(id));
    });
  }
}

function waitForStart(): Promise<StartMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start message from the primary within ${START_MESSAGE_TIMEOUT_MS} ms`)), START_MESSAGE_TIMEOUT_MS);
    const onMessage = (message: unknown) => {
      if (!isMessage<ToWorker, "start">(message, "start")) return;
      clearTimeout(timer);
      process.off("message", onMessage);
      resolve(message);
    };
    process.on("message", onMessage);
    send({ type: "waiting" });
  });
}

/**
 * In a fleet: tells the primary of every room member's allocation (start, and end with its final
 * counters) and reports the figures the fleet reads every REPORT_INTERVAL_MS. Returns the report,
 * to send once more before exiting.
 */
function reportToPrimary(server: RelayServer): () => WorkerReport {
  const members = new Map<MeteredAllocation, number>();
  let nextId = 1;
  server.setAllocationMeter({
    opened(allocation) {
      const { room, peerId } = allocation.owner;
      if (room === undefined || peerId === undefined) return;
      const id = nextId++;
      members.set(allocation, id);
      send({ type: "member-opened", id, room, peerId, createdAt: allocation.createdAt });
    },
    ended(allocation, endedAt) {
      const id = members.get(allocation);
      if (id === undefined) return;
      members.delete(allocation);
      send({ type: "member-ended", id, bytesToPeers: allocation.traffic.bytesToPeers, bytesToClient: allocation.traffic.bytesToClient, endedAt });
    },
  });
  const report = (): WorkerReport => {
    const traffic = trafficSoFar(server.stats.endedTraffic, server.table.values());
    return {
      bytes: { toPeers: traffic.bytesToPeers, toClients: traffic.bytesToClient },
      cpu: process.cpuUsage(),
      members: [...members].map(([allocation, id]) => [id, allocation.traffic.bytesToPeers, allocation.traffic.bytesToClient]),
    };
  };
  setInterval(() => send({ type: "report", ...report() }), REPORT_INTERVAL_MS).unref();
  return report;
}

async function serve(log: RelayLogger, { config, seat, revocations }: StartMessage): Promise<void> {
  const primary = new IpcPrimary();
  const server = new RelayServer(config, (event) => (event.event === "request-failed" ? log.warn(event) : log.info(event)), { seat, primary });
  // What the fleet revoked before this worker started (a restart) holds before it serves.
  if (revocations.length > 0) server.revoke(revocations);
  const finalReport = config.fleet === null ? null : reportToPrimary(server);
  let listeners;
  try {
    listeners = await server.start();
  } catch (error) {
    const { code, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
    await server.stop();
    process.stderr.write(`relay: worker ${seat.slot} cannot listen on ${address ?? "?"}:${port ?? "?"} (${code ?? String(error)})\n`);
    process.exit(1);
  }
  const registry = new Registry();
  registerServerMetrics(registry, server);
  const processMetrics = registerProcessMetrics(registry);
  handleUncaughtErrors(process, { log: (line) => log.error(line), count: (kind) => processMetrics.countUncaughtError(kind) });

  let stopping = false;
  process.on("message", (message: unknown) => {
    if (isMessage<ToWorker, "admission">(message, "admission")) {
      primary.settle(message.id, message.admission);
    } else if (isMessage<ToWorker, "connection">(message, "connection")) {
      primary.settle(message.id, { hold: message.hold });
    } else if (isMessage<ToWorker, "borrowed">(message, "borrowed")) {
      primary.settle(message.id, message.lent);
    } else if (isMessage<ToWorker, "lend">(message, "lend")) {
      void server.lendReserved(Buffer.from(message.token, "hex")).then((lent) => send({ type: "lent", id: message.id, lent }));
    } else if (isMessage<ToWorker, "given-back">(message, "given-back")) {
      server.portGivenBack(message.port);
    } else if (isMessage<ToWorker, "metrics">(message, "metrics")) {
      void registry.getMetricsAsJSON().then((metrics) => send({ type: "metrics", id: message.id, metrics }));
    } else if (isMessage<ToWorker, "reload">(message, "reload")) {
      try {
        const applied = server.reload(message.settings);
        send({ type: "reloaded", id: message.id, ok: true, ...applied });
      } catch (error) {
        send({ type: "reloaded", id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) });
      }
    } else if (isMessage<ToWorker, "revoke">(message, "revoke")) {
      send({ type: "revoked", id: message.id, outcome: server.revoke(message.revocations) });
    } else if (isMessage<ToWorker, "drain">(message, "drain")) {
      server.drain();
    } else if (isMessage<ToWorker, "stop">(message, "stop") && !stopping) {
      stopping = true;
      void server.stop()
        .then(() => {
          // Exits once the last figures are written to the channel (a send is asynchronous).
          if (finalReport === null || !process.connected) process.exit(0);
          process.send!({ type: "report", ...finalReport() } satisfies ToPrimary, undefined, {}, () => process.exit(0));
        });
    }
  });
  // The primary is gone (killed, crashed): nothing may be served without its quotas.
  process.on("disconnect", () => {
    void server.stop().finally(() => process.exit(1));
  });
  send({ type: "ready", listeners, udpIo: server.udpImplementation });
}

/** Runs this process as a worker: waits for the primary's start message, then serves. */
export async function runWorker(): Promise<void> {
  // The primary drives drains and reloads; a signal sent to the whole process group (Ctrl-C in a
  // terminal) must not stop a worker behind the primary's back.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1"] as const) process.on(signal, () => {});
  const start = await waitForStart();
  const { config, seat } = start;
  const log = createRelayLogger(config.logLevel, 1, { worker: seat.slot });
  // Relay ports from this worker's slice only; the quotas stay the relay's (the primary applies them).
  await serve(log, { ...start, config: { ...config, minPort: seat.minPort, maxPort: seat.maxPort, udpIo: "native" } });
}
