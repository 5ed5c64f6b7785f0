/**
 * The relay's Prometheus metrics (prom-client), read from the server when scraped: every relay
 * metric is a collect callback over the server's plain counters (RelayStats, the allocation
 * table), so the data path pays nothing for them. Labels come from small fixed sets (transport,
 * direction, method, result code, reason): never a user, an address or a port.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { TrafficCounters } from "../allocation/allocation.js";
import type { FleetCounters } from "../fleet/control-client.js";
import type { UsageLedgerCounts } from "../fleet/usage-ledger.js";
import type { AuthFailureKind } from "../auth/long-term.js";
import type { RefusalKind } from "../server/responses.js";
import type { RelayServer } from "../server/relay-server.js";
import { TRANSPORTS, trafficSoFar, type ClientTransport } from "../server/stats.js";
import { STREAM_CLOSE_REASONS } from "../transport/stream.js";
import { channelRouteTotals, udpSendTotals } from "../transport/udp-socket.js";

/** Every metric of the relay's own starts with this; process and Node metrics keep their standard names. */
export const METRIC_PREFIX = "relay_";

const AUTH_FAILURE_KINDS: readonly AuthFailureKind[] = [
  "no-credentials",
  "bad-request",
  "stale-nonce",
  "wrong-realm",
  "expired",
  "bad-username",
  "bad-integrity",
  "internal-error",
];

/** Label values are snake_case, as Prometheus conventions have them. */
function label(kind: string): string {
  return kind.replace(/-/g, "_");
}

export interface RelayMetrics {
  readonly registry: Registry;
  /** Counts a SIGHUP reload, done or refused. */
  countReload(result: "ok" | "failed"): void;
  /** Counts an error nothing caught (process 'uncaughtException' / 'unhandledRejection') that the relay lived through. */
  countUncaughtError(kind: UncaughtErrorKind): void;
}

export type UncaughtErrorKind = "exception" | "rejection";

/** Live allocations' traffic plus the ended ones': never goes down, as a counter must not. */
function totalTraffic(server: RelayServer): TrafficCounters {
  return trafficSoFar(server.stats.endedTraffic, server.table.values());
}

/**
 * `fleet`: the control channel's counters when the relay is in a fleet (--fleet-url); null without
 * one, and the fleet metrics then stay at 0. `usage`: the fleet's usage ledger (per room member),
 * read the same way.
 */
export function createRelayMetrics(server: RelayServer, fleet: FleetCounters | null = null, usage: { counts(): UsageLedgerCounts } | null = null): RelayMetrics {
  const registry = new Registry();
  registerServerMetrics(registry, server);
  registerFleetMetrics(registry, fleet, usage);
  return { registry, ...registerProcessMetrics(registry) };
}

/**
 * The metrics read from one server: allocations, traffic, requests, refusals. In a relay with
 * worker processes each worker has these and the primary sums them (relay/cluster/primary.ts): a
 * gauge that every worker reports alike says so with its `aggregator`.
 */
export function registerServerMetrics(registry: Registry, server: RelayServer): void {
  const registers = [registry];
  const stats = server.stats;

  new Gauge({
    name: `${METRIC_PREFIX}allocations_active`,
    help: "Allocations live now, by the client's transport to the relay.",
    labelNames: ["transport"],
    registers,
    collect() {
      const active: Record<ClientTransport, number> = { udp: 0, tcp: 0, tls: 0 };
      for (const allocation of server.table.values()) active[allocation.client.transport]++;
      for (const transport of TRANSPORTS) this.set({ transport }, active[transport]);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}allocations_total`,
    help: "Allocations opened since start, by the client's transport to the relay.",
    labelNames: ["transport"],
    registers,
    collect() {
      this.reset();
      for (const transport of TRANSPORTS) this.inc({ transport }, stats.allocationsOpened[transport]);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}relayed_bytes_total`,
    help: "Payload bytes relayed: to_peer (client to peer) and to_client (peer to client).",
    labelNames: ["direction"],
    registers,
    collect() {
      const scrapeTraffic = totalTraffic(server);
      this.reset();
      this.inc({ direction: "to_peer" }, scrapeTraffic.bytesToPeers);
      this.inc({ direction: "to_client" }, scrapeTraffic.bytesToClient);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}relayed_packets_total`,
    help: "Datagrams relayed: to_peer (client to peer) and to_client (peer to client).",
    labelNames: ["direction"],
    registers,
    collect() {
      const scrapeTraffic = totalTraffic(server);
      this.reset();
      this.inc({ direction: "to_peer" }, scrapeTraffic.packetsToPeers);
      this.inc({ direction: "to_client" }, scrapeTraffic.packetsToClient);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}dropped_packets_total`,
    help: "Datagrams dropped: no_permission (from a peer the client did not permit), bandwidth (over --max-bps or --bps-capacity).",
    labelNames: ["reason"],
    registers,
    collect() {
      const scrapeTraffic = totalTraffic(server);
      this.reset();
      this.inc({ reason: "no_permission" }, scrapeTraffic.droppedFromPeers);
      this.inc({ reason: "bandwidth" }, scrapeTraffic.droppedOverBandwidth);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}requests_total`,
    help: "STUN/TURN requests answered, by method and result (success, or the error code).",
    labelNames: ["method", "result"],
    registers,
    collect() {
      this.reset();
      for (const [key, count] of stats.requests) {
        const [method = "other", result = "unknown"] = key.split(" ");
        this.inc({ method, result }, count);
      }
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}auth_failures_total`,
    help: "Requests whose credential was refused, by reason (no_credentials is every client's first, unsigned try).",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      for (const kind of AUTH_FAILURE_KINDS) this.inc({ reason: label(kind) }, stats.authFailures.get(kind) ?? 0);
    },
  });
  const refusals = (kind: RefusalKind) => stats.refusals.get(kind) ?? 0;
  new Counter({
    name: `${METRIC_PREFIX}peers_refused_total`,
    help: "CreatePermission and ChannelBind requests refused because the peer address is denied (private, loopback, metadata, --denied-peer-ip).",
    registers,
    collect() {
      this.reset();
      this.inc(refusals("peer-denied"));
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}quota_refusals_total`,
    help: "Allocate requests refused for capacity: user (--user-quota), ip (--max-allocations-per-ip), total (--total-quota), ports (no relay port free), draining.",
    labelNames: ["quota"],
    registers,
    collect() {
      this.reset();
      this.inc({ quota: "user" }, refusals("user-quota"));
      this.inc({ quota: "ip" }, refusals("ip-quota"));
      this.inc({ quota: "total" }, refusals("total-quota"));
      this.inc({ quota: "ports" }, refusals("no-relay-port"));
      this.inc({ quota: "draining" }, refusals("draining"));
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}rate_limited_total`,
    help: "Answers to unauthenticated requests not sent: their source went over --unauthenticated-rate.",
    registers,
    collect() {
      this.reset();
      this.inc(stats.rateLimitedAnswers);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}stream_backlog_dropped_total`,
    help: "ChannelData and Data indications dropped because a TCP/TLS client's backlog was full: it was not reading as fast as its peers sent.",
    registers,
    collect() {
      this.reset();
      this.inc(stats.streamBacklogDropped);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}stream_closed_total`,
    help:
      "TCP/TLS connections the relay closed itself, by reason: backlog (not reading), response_backlog (an answer found the backlog full), " +
      "frame_timeout, allocate_timeout (--max-allocate-timeout), idle, not_turn, tls_handshake, per_ip_limit (refused: --max-connections-per-ip).",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      for (const reason of STREAM_CLOSE_REASONS) this.inc({ reason }, stats.streamClosed[reason]);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}requests_dropped_total`,
    help: "Requests dropped unanswered: bad_fingerprint (FINGERPRINT did not match, RFC 8489 §7.3), transaction_mismatch (a cached transaction id reused with other content).",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      this.inc({ reason: "bad_fingerprint" }, stats.badFingerprints);
      this.inc({ reason: "transaction_mismatch" }, stats.transactionMismatches);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}udp_source_port_zero_total`,
    help: "UDP datagrams dropped at a listener because their source port was 0: no answer can reach it (a forged or broken sender).",
    registers,
    collect() {
      this.reset();
      this.inc(stats.udpSourcePortZero);
    },
  });
  // The UDP send queues, over every socket of the process (closed ones included), read from the
  // transport's running totals at scrape time.
  new Counter({
    name: `${METRIC_PREFIX}udp_send_queued_total`,
    help: "UDP sends that met a full socket buffer and waited in a send queue until the socket was writable.",
    registers,
    collect() {
      this.reset();
      this.inc(udpSendTotals().queued);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}udp_send_dropped_total`,
    help: "UDP sends dropped because their socket's send queue (its buffer size) or every socket's queues together (64 MiB) were full.",
    registers,
    collect() {
      this.reset();
      this.inc(udpSendTotals().dropped);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}udp_sent_segmented_total`,
    help: "UDP datagrams that left in segmented sends (UDP_SEGMENT: a run to one destination handed to the kernel at once; native UDP only).",
    registers,
    collect() {
      this.reset();
      this.inc(udpSendTotals().segmented);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}channel_routes`,
    help: "Bound channels of UDP clients relayed by the native addon without entering JavaScript (native UDP only).",
    registers,
    collect() {
      this.set(channelRouteTotals().routes);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}channel_routed_datagrams_total`,
    help: "Datagrams relayed over channel routes by the native addon: to_peer from clients' ChannelData, to_client from peers.",
    labelNames: ["direction"],
    registers,
    collect() {
      this.reset();
      const totals = channelRouteTotals();
      this.inc({ direction: "to_peer" }, totals.routedToPeers);
      this.inc({ direction: "to_client" }, totals.routedToClients);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}udp_send_queue_bytes`,
    help: "Bytes waiting in UDP send queues now, over every socket.",
    registers,
    collect() {
      this.set(udpSendTotals().queuedBytes);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}draining`,
    help: "1 while the relay drains (SIGTERM, SIGINT or SIGUSR1 with --drain-timeout): new allocations are refused.",
    registers,
    // Every worker drains together: 1, not the number of workers.
    aggregator: "max",
    collect() {
      this.set(server.isDraining ? 1 : 0);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}ports_free`,
    help: "Relay ports (--min-port..--max-port) not held by an allocation or a port reservation.",
    registers,
    collect() {
      this.set(server.freePorts);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}port_reservations_active`,
    help: "Relay ports held now for a RESERVATION-TOKEN (EVEN-PORT with the R bit), each until used or 30 s have passed.",
    registers,
    collect() {
      this.set(server.reservations.size);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}port_reservations_total`,
    help: "Port reservations by result: issued (EVEN-PORT with the R bit), used (an Allocate carried the token), expired (never used).",
    labelNames: ["result"],
    registers,
    collect() {
      this.reset();
      this.inc({ result: "issued" }, stats.reservations.issued);
      this.inc({ result: "used" }, stats.reservations.used);
      this.inc({ result: "expired" }, stats.reservations.expired);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}revocations_active`,
    help: "Revocations from the fleet held now (a room, a room's peer, or a TURN username), each until the credentials it covers expire.",
    registers,
    // Every worker holds the same list.
    aggregator: "max",
    collect() {
      server.revocations.prune(Math.floor(Date.now() / 1000));
      this.set(server.revocations.size);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}allocations_revoked_total`,
    help: "Allocations ended because the fleet revoked their credential (a kick, a ban, a closed room, an API revoke), by the client's transport.",
    labelNames: ["transport"],
    registers,
    collect() {
      this.reset();
      for (const transport of TRANSPORTS) this.inc({ transport }, stats.allocationsRevoked[transport]);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}revoked_requests_total`,
    help: "TURN requests (Allocate, Refresh, CreatePermission, ChannelBind) answered 403 because their credential was revoked.",
    registers,
    collect() {
      this.reset();
      this.inc(refusals("revoked"));
    },
  });
}

/**
 * The fleet channel's metrics (`fleet`: its counters; `usage`: the usage ledger), 0 without a fleet.
 * Kept by the process that holds the channel: the relay, or the primary of a relay with workers.
 */
export function registerFleetMetrics(registry: Registry, fleet: FleetCounters | null, usage: { counts(): UsageLedgerCounts } | null): void {
  const registers = [registry];
  new Gauge({
    name: `${METRIC_PREFIX}fleet_connected`,
    help: "1 while the control channel to the Worker's fleet (--fleet-url) is open; the relay serves the same either way.",
    registers,
    collect() {
      this.set(fleet?.connected === true ? 1 : 0);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}fleet_connects_total`,
    help: "Control-channel connections to the fleet that opened.",
    registers,
    collect() {
      this.reset();
      this.inc(fleet?.connects ?? 0);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}fleet_closes_total`,
    help:
      "Control-channel closes (and failed connects: 1006), by WebSocket close code: 4401 bad token, 4402 token expired, 4403 token replayed, " +
      "4408 fleet full, 4409 protocol violation, 4410 fleet not configured, 4411 replaced by a newer connection; other: a code not listed.",
    labelNames: ["code"],
    registers,
    collect() {
      this.reset();
      for (const [code, count] of fleet?.closes ?? []) this.inc({ code }, count);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}fleet_heartbeats_sent_total`,
    help: "Heartbeats sent to the fleet (every 5 s while connected, and at once when the relay starts draining).",
    registers,
    collect() {
      this.reset();
      this.inc(fleet?.heartbeatsSent ?? 0);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}fleet_usage_acks_total`,
    help: "usage-ack messages from the fleet: usage reports it stored.",
    registers,
    collect() {
      this.reset();
      this.inc(fleet?.usageAcks ?? 0);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}fleet_usage_members`,
    help:
      "Room members the usage ledger holds, by state: live (an allocation now), unacked (all ended, final usage not yet stored by the fleet), " +
      "settled (final usage stored; kept so a returning peer's usage carries on).",
    labelNames: ["state"],
    registers,
    collect() {
      const counts = usage?.counts();
      this.set({ state: "live" }, counts?.live ?? 0);
      this.set({ state: "unacked" }, counts?.unacked ?? 0);
      this.set({ state: "settled" }, counts?.settled ?? 0);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}fleet_usage_dropped_total`,
    help: "Room members whose final usage was dropped before the fleet stored it, for the ledger's bound (50,000 idle members): usage lost. The channel was down long under heavy churn.",
    registers,
    collect() {
      this.reset();
      this.inc(usage?.counts().dropped ?? 0);
    },
  });
  new Counter({
    name: `${METRIC_PREFIX}fleet_usage_forgotten_total`,
    help: "Settled room members (final usage stored) forgotten for the ledger's bound; such a peer allocating again counts from 0 in this boot.",
    registers,
    collect() {
      this.reset();
      this.inc(usage?.counts().forgotten ?? 0);
    },
  });
}

/** What every relay process counts of itself: reloads, errors nothing caught, and Node's own process metrics. */
export function registerProcessMetrics(registry: Registry): Omit<RelayMetrics, "registry"> {
  const registers = [registry];
  const reloads = new Counter({
    name: `${METRIC_PREFIX}reloads_total`,
    help: "SIGHUP reloads of secrets, TLS certificate and metrics token, by result.",
    labelNames: ["result"],
    registers,
  });
  const reloadOk = reloads.labels({ result: "ok" });
  const reloadFailed = reloads.labels({ result: "failed" });
  reloadOk.inc(0);
  reloadFailed.inc(0);
  const uncaught = new Counter({
    name: `${METRIC_PREFIX}uncaught_errors_total`,
    help: "Errors nothing caught (exception: thrown, rejection: an unhandled promise rejection), logged while the relay kept serving; each is a bug to report.",
    labelNames: ["kind"],
    registers,
  });
  const uncaughtExceptions = uncaught.labels({ kind: "exception" });
  const uncaughtRejections = uncaught.labels({ kind: "rejection" });
  uncaughtExceptions.inc(0);
  uncaughtRejections.inc(0);
  collectDefaultMetrics({ register: registry });

  return {
    countReload: (result) => (result === "ok" ? reloadOk : reloadFailed).inc(),
    countUncaughtError: (kind) => (kind === "exception" ? uncaughtExceptions : uncaughtRejections).inc(),
  };
}
