/**
 * The fleet wired to a running relay: the register message from its settings and bound listeners,
 * heartbeats from its allocation table and counters, the control client that carries them, and the
 * fleet's revocations handed to the server (which ends and refuses what they cover). Each
 * heartbeat also carries a usage report from the usage ledger (./usage-ledger.ts), which the
 * server tells of every allocation's start and end; the fleet's `usage-ack` goes back to the ledger.
 * The relay's process (relay/main.ts) makes one after its listeners are bound, starts it, reports a
 * drain through it and stops it last (after the server, so every allocation's final usage is sent).
 */
import { randomBytes } from "node:crypto";
import type { FleetConfig, RelayConfig } from "../config.js";
import type { Revocation } from "../../shared/fleet/protocol.js";
import type { AllocationMeter, ListenerAddress, RelayServer, RevokeOutcome } from "../server/relay-server.js";
import { trafficSoFar } from "../server/stats.js";
import { FleetControlClient, type FleetClientOptions } from "./control-client.js";
import { HeartbeatSampler } from "./heartbeat.js";
import { derivePublicUrls, publicHost } from "./public-urls.js";
import { registerMessage, relayVersion } from "./register.js";
import { UsageLedger, newBootId } from "./usage-ledger.js";

/**
 * When the relay stops (after its allocations ended), it sends its last usage at once and waits at
 * most this long for the fleet's acks before closing the channel; what is still unacknowledged
 * then is lost with the process (the fleet keeps the figures of the last report it stored).
 */
export const FINAL_USAGE_FLUSH_MS = 2_000;
/** Heartbeats the final flush sends at most (a relay with more than 200 members to report needs several). */
const FINAL_USAGE_REPORTS = 3;

/**
 * What the fleet reads from the relay and hands it. One process: the server itself
 * (`fleetRelayOf`). A relay with worker processes: the primary's view of all of them
 * (relay/cluster/cluster-fleet.ts).
 */
export interface FleetRelay {
  allocationCount(): number;
  /** Payload bytes relayed since start, never going down. */
  bytesRelayed(): { toPeers: number; toClients: number };
  roomCounts(): ReadonlyMap<string, number>;
  /** CPU time of every process relaying (microseconds since start); absent: this process's. */
  cpuUsage?(): NodeJS.CpuUsage;
  setAllocationMeter(meter: AllocationMeter | null): void;
  revoke(revocations: readonly Revocation[]): RevokeOutcome | Promise<RevokeOutcome>;
  /** Revocations held now. */
  revocationCount(): number;
}

/** The fleet's view of a one-process relay. */
export function fleetRelayOf(server: RelayServer): FleetRelay {
  return {
    allocationCount: () => server.allocationCount,
    bytesRelayed: () => {
      const traffic = trafficSoFar(server.stats.endedTraffic, server.table.values());
      return { toPeers: traffic.bytesToPeers, toClients: traffic.bytesToClient };
    },
    roomCounts: () => server.table.roomCounts(),
    setAllocationMeter: (meter) => server.setAllocationMeter(meter),
    revoke: (revocations) => server.revoke(revocations),
    revocationCount: () => server.revocations.size,
  };
}

export interface RelayFleet {
  readonly client: FleetControlClient;
  /** The URLs registered (given or derived). */
  readonly urls: readonly string[];
  /** Per room member usage, reported in the heartbeats. */
  readonly usage: UsageLedger;
  /** Takes the keys a SIGHUP read: the next connection's token is signed with the first. */
  setKeys(keys: readonly string[]): void;
  /**
   * Sends the usage not yet acknowledged (waiting up to FINAL_USAGE_FLUSH_MS for the acks), then
   * closes the channel cleanly (1000) and stops the sampler; never rejects. Call it after the
   * server stopped, so every allocation's final figures are in.
   */
  stop(): Promise<void>;
}

/** The URLs to register: --public-url, or derived from the public address and the bound listeners. */
export function registeredUrls(config: Pick<RelayConfig, "externalIps" | "listeningIps">, fleet: Pick<FleetConfig, "publicUrls">, listeners: readonly ListenerAddress[]): string[] {
  if (fleet.publicUrls.length > 0) return [...fleet.publicUrls];
  const host = publicHost(config);
  return host === null ? [] : derivePublicUrls(host, listeners);
}

export function createRelayFleet(
  config: RelayConfig,
  fleet: FleetConfig,
  relay: FleetRelay,
  listeners: readonly ListenerAddress[],
  log: FleetClientOptions["log"],
  timing?: FleetClientOptions["timing"],
): RelayFleet | null {
  const urls = registeredUrls(config, fleet, listeners);
  if (urls.length === 0) {
    log.warn({ event: "fleet-disabled", reason: "no URL to register: give --public-url; the relay serves on its own" });
    return null;
  }
  const version = relayVersion();
  let keys = [...fleet.keys];
  const sampler = new HeartbeatSampler({
    allocations: () => relay.allocationCount(),
    bytesRelayed: () => relay.bytesRelayed(),
    roomCounts: () => relay.roomCounts(),
    ...(relay.cpuUsage !== undefined && { cpuUsage: () => relay.cpuUsage!() }),
  });
  const usage = new UsageLedger({
    boot: newBootId(randomBytes),
    onDropped: (count, total) =>
      log.warn({
        event: "fleet-usage-dropped",
        members: count,
        total,
        advice: "room members' final usage was dropped before the fleet acknowledged it (the channel has been down long under heavy churn): their last figures are lost; check the fleet channel",
      }),
  });
  relay.setAllocationMeter(usage);
  let ackWaiter: (() => void) | null = null;
  const client = new FleetControlClient({
    url: fleet.url,
    relayId: fleet.relayId,
    signingKey: () => keys[0]!,
    register: () => registerMessage(fleet, urls, { totalQuota: config.totalQuota, bpsCapacity: config.bpsCapacity }, version),
    heartbeat: (state) => ({ ...sampler.build(state), usage: usage.report() }),
    onUsageAck: (ack) => {
      usage.acknowledge(ack);
      ackWaiter?.();
    },
    onRevoke: (revocations) => {
      void Promise.resolve(relay.revoke(revocations)).then((outcome) => {
        log.info({ event: "fleet-revoke", revocations: revocations.length, ...outcome, active: relay.revocationCount() });
        if (outcome.full > 0) {
          log.warn({ event: "fleet-revocations-full", dropped: outcome.full, advice: "the relay holds the most revocations it keeps; the fleet's own cap should have refused these: check the Worker's version" });
        }
      });
    },
    log,
    ...(timing !== undefined && { timing }),
  });
  return {
    client,
    urls,
    setKeys: (next) => {
      if (next.length > 0) keys = [...next];
    },
    usage,
    stop: async () => {
      relay.setAllocationMeter(null);
      await flushUsage(client, usage, (waiter) => (ackWaiter = waiter));
      ackWaiter = null;
      await client.stop();
      sampler.close();
    },
  };
}

/** Sends heartbeats while usage is unacknowledged, each waiting for an ack, within FINAL_USAGE_FLUSH_MS in all. */
async function flushUsage(client: FleetControlClient, usage: UsageLedger, setWaiter: (waiter: (() => void) | null) => void): Promise<void> {
  const deadline = Date.now() + FINAL_USAGE_FLUSH_MS;
  for (let report = 0; report < FINAL_USAGE_REPORTS && usage.hasUnacked(); report++) {
    const left = deadline - Date.now();
    if (left <= 0 || !client.heartbeatNow()) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      setWaiter(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    setWaiter(null);
  }
}
