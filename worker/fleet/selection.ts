/**
 * Which relays a caller gets: pure, with the clock passed in, so the policy is unit-tested apart
 * from any Durable Object.
 *
 * Eligible: a heartbeat within LIVE_WITHIN_MS, state `ready`, and below capacity. Order: relays
 * whose control channel is open first, then those whose channel closed within LIVE_WITHIN_MS. A
 * closed channel is the first sign of a relay that died (kill -9, a crash: the fleet sees the close
 * at once, long before its heartbeats go stale), so calls recovering from it are not sent back to
 * it; yet it may only be the Worker redeploying, so such a relay still serves when no connected
 * relay can. Within each part: great-circle distance from the caller, nearest first; distances
 * within TIE_DISTANCE_KM of the nearest of a group count as a tie, broken by load; relays without a
 * location come after located ones; a caller without a location gets the least loaded first.
 */
import { LIVE_WITHIN_MS, type GeoLocation, type RelayState } from "../../shared/fleet/protocol.js";

/** What selection needs to know about one relay: the fleet object's snapshot carries exactly this. */
export interface FleetRelay {
  id: string;
  urls: string[];
  location: GeoLocation | null;
  capacity: { allocations: number; bps: number };
  state: RelayState;
  /** Its control channel is open now. */
  connected: boolean;
  /** Milliseconds since the epoch of the last heartbeat; null before the first one. */
  lastHeartbeatAt: number | null;
  allocations: number;
  bpsIn: number;
  bpsOut: number;
}

/** Relays closer to each other than this, as seen from the caller, are as near as each other. */
export const TIE_DISTANCE_KM = 50;
const EARTH_RADIUS_KM = 6371.0088;

/** Haversine distance in kilometres. */
export function distanceKm(a: GeoLocation, b: GeoLocation): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

export function isLive(relay: FleetRelay, now: number): boolean {
  return relay.lastHeartbeatAt !== null && now - relay.lastHeartbeatAt <= LIVE_WITHIN_MS;
}

export function isFull(relay: FleetRelay): boolean {
  const { allocations, bps } = relay.capacity;
  return (allocations > 0 && relay.allocations >= allocations) || (bps > 0 && relay.bpsIn + relay.bpsOut >= bps);
}

export function isEligible(relay: FleetRelay, now: number): boolean {
  return isLive(relay, now) && relay.state === "ready" && !isFull(relay);
}

/**
 * How busy a relay is: the larger of its allocation and bandwidth fractions of capacity, or its raw
 * allocation count when it declares no capacity at all.
 */
export function loadOf(relay: FleetRelay): number {
  const { allocations, bps } = relay.capacity;
  if (allocations <= 0 && bps <= 0) return relay.allocations;
  const byAllocations = allocations > 0 ? relay.allocations / allocations : 0;
  const byBandwidth = bps > 0 ? (relay.bpsIn + relay.bpsOut) / bps : 0;
  return Math.max(byAllocations, byBandwidth);
}

function byLoad(a: FleetRelay, b: FleetRelay): number {
  return loadOf(a) - loadOf(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Located relays by distance in tie groups (each ordered by load), then unlocated ones by load. */
export function orderRelays(relays: readonly FleetRelay[], from: GeoLocation | null): FleetRelay[] {
  if (from === null) return [...relays].sort(byLoad);
  const located = relays
    .filter((relay) => relay.location !== null)
    .map((relay) => ({ relay, km: distanceKm(from, relay.location!) }))
    .sort((a, b) => a.km - b.km);
  const ordered: FleetRelay[] = [];
  for (let start = 0; start < located.length; ) {
    let end = start;
    while (end < located.length && located[end]!.km - located[start]!.km <= TIE_DISTANCE_KM) end++;
    ordered.push(...located.slice(start, end).map((entry) => entry.relay).sort(byLoad));
    start = end;
  }
  ordered.push(...relays.filter((relay) => relay.location === null).sort(byLoad));
  return ordered;
}

/** The best `count` eligible relays for a caller at `from`, leaving out `excludeId` (a draining relay). */
export function pickRelays(relays: readonly FleetRelay[], from: GeoLocation | null, count: number, now: number, excludeId?: string): FleetRelay[] {
  const eligible = relays.filter((relay) => relay.id !== excludeId && isEligible(relay, now));
  const connected = eligible.filter((relay) => relay.connected);
  const closed = eligible.filter((relay) => !relay.connected);
  return [...orderRelays(connected, from), ...orderRelays(closed, from)].slice(0, count);
}
