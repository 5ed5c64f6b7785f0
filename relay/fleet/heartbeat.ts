/**
 * What a relay tells the fleet every HEARTBEAT_INTERVAL_MS: its load since the last heartbeat and
 * the rooms it holds allocations for. The arithmetic is pure (rates, the room list); the sampler
 * reads counters the relay already keeps, once per heartbeat, and adds nothing to the data path.
 *
 *   allocations       live allocations
 *   bpsIn / bpsOut    bits per second relayed since the last heartbeat: in = from clients toward
 *                     peers, out = toward clients (the payload bytes the allocations count)
 *   cpuPercent        this process's CPU (user + system) over the wall time, percent of one core
 *   eventLoopDelayMs  p99 of the event loop's delay over the interval (perf_hooks), reset each time
 *   rooms             allocations per room, most first, at most FLEET_LIMITS.maxRooms; the rest
 *                     are counted in roomsOmitted
 *   usage             added by relay-fleet.ts from the usage ledger (./usage-ledger.ts)
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from "node:perf_hooks";
import { FLEET_LIMITS, type HeartbeatMessage, type RelayState, type RoomLoad } from "../../shared/fleet/protocol.js";

/** The event-loop monitor's timer: fine enough for a p99 in milliseconds, cheap when idle (one timer). */
export const EVENT_LOOP_RESOLUTION_MS = 20;
/**
 * Rates need a window: a heartbeat sent this soon after the previous one (a state change right after
 * a periodic beat) repeats the last rates instead of measuring a few milliseconds.
 */
export const MIN_RATE_WINDOW_MS = 500;

/** What a heartbeat reads from the relay. */
export interface HeartbeatSources {
  allocations(): number;
  /** Payload bytes relayed since start, never going down. */
  bytesRelayed(): { toPeers: number; toClients: number };
  /** Allocations per room (room-scoped credentials only). */
  roomCounts(): ReadonlyMap<string, number>;
  /** CPU time of every process relaying, cumulative; absent: this process's (process.cpuUsage). */
  cpuUsage?(): NodeJS.CpuUsage;
}

/** Rooms by allocations, most first (ties by name, so the list is stable), cut at `max`. */
export function roomLoads(counts: ReadonlyMap<string, number>, max: number = FLEET_LIMITS.maxRooms): { rooms: RoomLoad[]; roomsOmitted: number } {
  const all = [...counts].filter(([, allocations]) => allocations > 0);
  all.sort(([roomA, a], [roomB, b]) => b - a || (roomA < roomB ? -1 : roomA > roomB ? 1 : 0));
  return {
    rooms: all.slice(0, max).map(([room, allocations]) => ({ room, allocations })),
    roomsOmitted: Math.max(0, all.length - max),
  };
}

/** Bits per second from two byte counts `elapsedMs` apart; 0 when the counter went back or no time passed. */
export function bitsPerSecond(bytesBefore: number, bytesNow: number, elapsedMs: number): number {
  if (elapsedMs <= 0 || bytesNow <= bytesBefore) return 0;
  return Math.round(((bytesNow - bytesBefore) * 8 * 1000) / elapsedMs);
}

/** Percent of one core from a process.cpuUsage delta (microseconds) over `elapsedMs`, to 0.1. */
export function cpuPercent(usage: { user: number; system: number }, elapsedMs: number): number {
  if (elapsedMs <= 0) return 0;
  return Math.round(((usage.user + usage.system) / 1000 / elapsedMs) * 1000) / 10;
}

/** The p99 of a delay histogram (nanoseconds) in milliseconds to 0.1; 0 before any sample. */
export function p99Milliseconds(histogram: Pick<IntervalHistogram, "count" | "percentile">): number {
  if (histogram.count === 0) return 0;
  const p99 = histogram.percentile(99);
  return Number.isFinite(p99) && p99 > 0 ? Math.round(p99 / 1e5) / 10 : 0;
}

interface Window {
  at: number;
  toPeers: number;
  toClients: number;
  cpu: NodeJS.CpuUsage;
}

/**
 * Builds heartbeats from the relay's counters, each over the time since the previous one. Starts
 * the event-loop monitor when made; `close()` stops it.
 */
export class HeartbeatSampler {
  private window: Window;
  private rates = { bpsIn: 0, bpsOut: 0, cpuPercent: 0, eventLoopDelayMs: 0 };
  private readonly loop: IntervalHistogram;

  constructor(
    private readonly sources: HeartbeatSources,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.loop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.loop.enable();
    this.window = this.snapshot();
  }

  private snapshot(): Window {
    const bytes = this.sources.bytesRelayed();
    return { at: this.now(), toPeers: bytes.toPeers, toClients: bytes.toClients, cpu: this.sources.cpuUsage?.() ?? process.cpuUsage() };
  }

  build(state: RelayState): HeartbeatMessage {
    const elapsed = this.now() - this.window.at;
    if (elapsed >= MIN_RATE_WINDOW_MS) {
      const next = this.snapshot();
      this.rates = {
        bpsIn: bitsPerSecond(this.window.toPeers, next.toPeers, elapsed),
        bpsOut: bitsPerSecond(this.window.toClients, next.toClients, elapsed),
        cpuPercent: cpuPercent({ user: next.cpu.user - this.window.cpu.user, system: next.cpu.system - this.window.cpu.system }, elapsed),
        eventLoopDelayMs: p99Milliseconds(this.loop),
      };
      this.loop.reset();
      this.window = next;
    }
    return { type: "heartbeat", state, allocations: this.sources.allocations(), ...this.rates, ...roomLoads(this.sources.roomCounts()) };
  }

  close(): void {
    this.loop.disable();
  }
}
