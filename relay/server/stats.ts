/**
 * What the relay counts for its operators: plain integers the server bumps as requests and
 * allocations come and go, read by the metrics exporter (relay/ops/metrics.ts) when it is scraped.
 * Nothing here is touched per relayed packet: the data path's own counters live on each
 * allocation (`Allocation.traffic`) and are summed at scrape time, plus the totals of the
 * allocations that already ended (`endedTraffic`). No label is a user or an address: every key is
 * from a small fixed set, so the number of series stays bounded whatever the traffic.
 */
import type { TrafficCounters } from "../allocation/allocation.js";
import type { AuthFailureKind } from "../auth/long-term.js";
import { StunMethod } from "../stun/constants.js";
import { STREAM_CLOSE_REASONS, type StreamCloseReason, type StreamCounters } from "../transport/stream.js";
import type { Answer, RefusalKind } from "./responses.js";

export type ClientTransport = "udp" | "tcp" | "tls";

export const TRANSPORTS: readonly ClientTransport[] = ["udp", "tcp", "tls"];

/** STUN method → metric label; anything else is "other" (the label set stays fixed). */
const METHOD_NAMES: ReadonlyMap<number, string> = new Map([
  [StunMethod.Binding, "binding"],
  [StunMethod.Allocate, "allocate"],
  [StunMethod.Refresh, "refresh"],
  [StunMethod.CreatePermission, "create_permission"],
  [StunMethod.ChannelBind, "channel_bind"],
]);

export function methodName(method: number): string {
  return METHOD_NAMES.get(method) ?? "other";
}

export function emptyTraffic(): TrafficCounters {
  return { packetsToPeers: 0, bytesToPeers: 0, packetsToClient: 0, bytesToClient: 0, droppedFromPeers: 0, droppedOverBandwidth: 0 };
}

/**
 * Everything relayed since start: the ended allocations' totals plus each live allocation's
 * counters, summed when asked (a scrape, a fleet heartbeat), never per packet. It never goes down:
 * an allocation's counters join `ended` in the same tick it leaves the table.
 */
export function trafficSoFar(ended: TrafficCounters, live: Iterable<{ readonly traffic: TrafficCounters }>): TrafficCounters {
  const total = { ...ended };
  for (const { traffic } of live) {
    total.packetsToPeers += traffic.packetsToPeers;
    total.bytesToPeers += traffic.bytesToPeers;
    total.packetsToClient += traffic.packetsToClient;
    total.bytesToClient += traffic.bytesToClient;
    total.droppedFromPeers += traffic.droppedFromPeers;
    total.droppedOverBandwidth += traffic.droppedOverBandwidth;
  }
  return total;
}

export class RelayStats implements StreamCounters {
  /** Allocations opened since start, by the client's transport. */
  readonly allocationsOpened: Record<ClientTransport, number> = { udp: 0, tcp: 0, tls: 0 };
  /** The traffic counters of allocations that have ended, added up when each ends. */
  readonly endedTraffic: TrafficCounters = emptyTraffic();
  /** Requests answered, by `method result` (result: "success" or the error code). */
  readonly requests = new Map<string, number>();
  /** Requests whose credential was refused, by why. */
  readonly authFailures = new Map<AuthFailureKind, number>();
  /** Requests refused by a quota, a full port range, the peer policy or a drain, by which. */
  readonly refusals = new Map<RefusalKind, number>();
  /** Answers to unauthenticated requests not sent because their source went over --unauthenticated-rate. */
  rateLimitedAnswers = 0;
  /** Requests dropped because their FINGERPRINT was wrong (RFC 8489 §7.3). */
  badFingerprints = 0;
  /** Requests dropped because they reused a cached transaction id with other content (no retransmission). */
  transactionMismatches = 0;
  /** Port reservations (EVEN-PORT with the R bit): made, honoured by a RESERVATION-TOKEN, or run out unused. */
  readonly reservations = { issued: 0, used: 0, expired: 0 };
  /** ChannelData and Data indications dropped because a TCP/TLS client's backlog was full (it was not reading). */
  streamBacklogDropped = 0;
  /** TCP/TLS connections the relay closed or refused itself, by why. */
  readonly streamClosed = Object.fromEntries(STREAM_CLOSE_REASONS.map((reason) => [reason, 0])) as Record<StreamCloseReason, number>;
  /** Datagrams dropped at a UDP listener because their source port was 0 (no answer can reach it). */
  udpSourcePortZero = 0;
  /** Allocations ended because the fleet revoked their credential, by the client's transport. */
  readonly allocationsRevoked: Record<ClientTransport, number> = { udp: 0, tcp: 0, tls: 0 };

  /** Counts one answer: by method and result, and by refusal when it is one. */
  countAnswer(method: number, answer: Answer): void {
    const key = `${methodName(method)} ${answer.ok ? "success" : String(answer.code)}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    if (!answer.ok && answer.refusal !== undefined) this.refusals.set(answer.refusal, (this.refusals.get(answer.refusal) ?? 0) + 1);
  }

  countAuthFailure(kind: AuthFailureKind): void {
    this.authFailures.set(kind, (this.authFailures.get(kind) ?? 0) + 1);
  }

  /** An allocation ended: its final counters join the totals (in the same tick it leaves the table). */
  addEndedTraffic(traffic: TrafficCounters): void {
    this.endedTraffic.packetsToPeers += traffic.packetsToPeers;
    this.endedTraffic.bytesToPeers += traffic.bytesToPeers;
    this.endedTraffic.packetsToClient += traffic.packetsToClient;
    this.endedTraffic.bytesToClient += traffic.bytesToClient;
    this.endedTraffic.droppedFromPeers += traffic.droppedFromPeers;
    this.endedTraffic.droppedOverBandwidth += traffic.droppedOverBandwidth;
  }
}
