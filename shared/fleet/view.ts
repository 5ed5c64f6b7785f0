/**
 * `GET /v1/fleet` (API key): the operator's view of the fleet, as JSON. The `/fleet` page renders it;
 * scripts and dashboards may read it too.
 */
import type { GeoLocation, RelayState, RoomLoad } from "./protocol.js";

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
  /** ISO 8601 of its last `register`. */
  registeredAt: string;
  /** The rooms of its last heartbeat, most allocations first... */
  rooms: RoomLoad[];
  /** ...and how many more it left out for the cap. */
  roomsOmitted: number;
}

export interface FleetView {
  relays: RelayView[];
  /** Refused control-channel connections since the fleet object started keeping count, by reason. */
  refusals: Partial<Record<string, number>>;
}
