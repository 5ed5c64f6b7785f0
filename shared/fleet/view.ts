/**
 * `GET /v1/fleet` (API key): the operator's view of the fleet, as JSON. The `/fleet` page renders it;
 * scripts and dashboards may read it too.
 */
import type { GeoLocation, RelayState } from "./protocol.js";

export interface RelayView {
  id: string;
  /** The last state the relay reported. */
  state: RelayState;
  /** Its control channel is open now. */
  connected: boolean;
  /** Its last heartbeat is within LIVE_WITHIN_MS: it may be handed out (if ready and below capacity). */
  live: boolean;
  region: string;
  location: GeoLocation | null;
  urls: string[];
  version: string;
  capacity: { allocations: number; bps: number };
  allocations: number;
  bpsIn: number;
  bpsOut: number;
  cpuPercent: number;
  eventLoopDelayMs: number;
  /** ISO 8601; null before the first heartbeat. */
  lastHeartbeatAt: string | null;
  registeredAt: string;
  /** Rooms it holds allocations for (as last reported, counting those left out of the list). */
  rooms: number;
}

export interface FleetView {
  relays: RelayView[];
  /** Refused control-channel connections since the fleet object started keeping count, by reason. */
  refusals: Record<string, number>;
}
