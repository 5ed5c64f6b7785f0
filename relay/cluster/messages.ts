/**
 * What the primary and its worker processes say to each other over the cluster's IPC channel
 * (docs/design/relay-workers.md). Every message is a plain JSON object with a `type`; a request that
 * waits for an answer carries an `id` the answer repeats. Nothing here is per packet: admissions and
 * releases are per allocation, the rest per signal or scrape.
 */
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { ListenerAddress, ReloadableSettings, RevokeOutcome } from "../server/relay-server.js";
import type { Revocation } from "../../shared/fleet/protocol.js";
import type { RelayConfig } from "../config.js";
import type { Admission } from "./admission-ledger.js";
import type { WorkerReport } from "./cluster-fleet.js";
import type { LentPort, WorkerSeat } from "./seat.js";

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** Primary → worker. */
export type ToWorker =
  /** The first message: the settings (as the primary resolved them) and the worker's seat. */
  | { type: "start"; config: RelayConfig; seat: WorkerSeat; revocations: Revocation[] }
  /** The answer to `admit`. */
  | { type: "admission"; id: number; admission: Admission }
  /**
   * Refuse new allocations (508), let the live ones carry on (ending those that go quiet). The worker
   * keeps answering until `stop`: its clients' datagrams reach it and no other.
   */
  | { type: "drain" }
  /** Close every allocation and listener, send the last report, and exit 0. */
  | { type: "stop" }
  /** Take these secrets and TLS files (already checked by the primary); answered with `reloaded`. */
  | { type: "reload"; id: number; settings: ReloadableSettings }
  /** End and refuse what these revocations cover; answered with `revoked`. */
  | { type: "revoke"; id: number; revocations: Revocation[] }
  /** Send the metrics registry's values; answered with `metrics`. */
  | { type: "metrics"; id: number }
  /** The answer to `borrow`: the port, closed at its lender, or null when no worker holds the token. */
  | { type: "borrowed"; id: number; lent: LentPort | null }
  /** Another worker was given this RESERVATION-TOKEN (hex): close its port and lend it; answered with `lent`. */
  | { type: "lend"; id: number; token: string }
  /** A port this worker lent is free again. */
  | { type: "given-back"; port: number }
  /** The answer to `connect`: a hold, or null when the source holds the most connections already. */
  | { type: "connection"; id: number; hold: number | null };

/** Worker → primary. */
export type ToPrimary =
  /** Listening for `start` (sent after the worker's code has loaded: a message sent before that is lost). */
  | { type: "waiting" }
  /** Serving: its listeners are bound (TCP and TLS through the primary's shared handles). */
  | { type: "ready"; listeners: ListenerAddress[]; udpIo: "native" | "dgram" }
  /** May one more allocation for `user` from client `address` be made? */
  | { type: "admit"; id: number; user: string; address: string }
  /** An admitted allocation ended (or was never made). */
  | { type: "release"; hold: number }
  /** May `user` hold one more port reservation (EVEN-PORT's R bit)? Answered with `admission`. */
  | { type: "admit-reservation"; id: number; user: string }
  /** A reservation was used, expired, or never made. */
  | { type: "release-reservation"; hold: number }
  | { type: "reloaded"; id: number; ok: true; secrets: number; tls: boolean }
  | { type: "reloaded"; id: number; ok: false; error: string }
  | { type: "revoked"; id: number; outcome: RevokeOutcome }
  | { type: "metrics"; id: number; metrics: WorkerMetrics }
  /** An Allocate carried a RESERVATION-TOKEN (hex) this worker does not hold: which worker does? */
  | { type: "borrow"; id: number; token: string }
  | { type: "lent"; id: number; lent: Omit<LentPort, "lender"> | null }
  /** A borrowed port's socket closed here. */
  | { type: "give-back"; lender: number; port: number }
  /** A TCP or TLS connection from client `address`: within --max-connections-per-ip over all workers? */
  | { type: "connect"; id: number; address: string }
  /** An admitted connection closed. */
  | { type: "disconnect"; hold: number }
  /** In a fleet, every REPORT_INTERVAL_MS and once more before a drained worker exits (./cluster-fleet.ts). */
  | ({ type: "report" } & WorkerReport)
  /** A room member's allocation started (in a fleet): the usage ledger meters it under `id`. */
  | { type: "member-opened"; id: number; room: string; peerId: string; createdAt: number }
  | { type: "member-ended"; id: number; bytesToPeers: number; bytesToClient: number; endedAt: number };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/**
 * Whether `value` is a message of ours with this type. The channel is between processes of one
 * relay, so this guards against mistakes (and Node's own cluster messages on the same channel), not
 * against an attacker.
 */
export function isMessage<T extends { type: string }, K extends T["type"]>(value: unknown, type: K): value is Extract<T, { type: K }> {
  return isObject(value) && value.type === type;
}

/** Our messages, told apart from Node's internal cluster ones on the same channel. */
export function messageType(value: unknown): string | null {
  return isObject(value) && typeof value.type === "string" ? value.type : null;
}
