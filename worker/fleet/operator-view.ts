/**
 * `GET /v1/fleet` (API key): every relay the fleet knows, with its state, load, location and last
 * heartbeat, and the connections refused by reason. Pure: records and a clock in, JSON out.
 */
import type { GeoLocation, RelayState, RoomLoad } from "../../shared/fleet/protocol.js";
import type { RefusalReason, RelayRecord } from "./fleet-store.js";
import { isLive } from "./selection.js";

export interface OperatorRelay {
  id: string;
  state: RelayState;
  /** Its control connection is up right now. */
  connected: boolean;
  /** Its last heartbeat is within LIVE_WITHIN_MS: it may be handed out (if ready and not full). */
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

export interface FleetOperatorView {
  relays: OperatorRelay[];
  refusals: Partial<Record<RefusalReason, number>>;
}

export function operatorRelay(record: RelayRecord, rooms: RoomLoad[], now: number): OperatorRelay {
  return {
    id: record.id,
    state: record.state,
    connected: record.connected,
    live: isLive(record, now),
    region: record.region,
    location: record.location,
    urls: record.urls,
    version: record.version,
    capacity: record.capacity,
    allocations: record.allocations,
    bpsIn: record.bpsIn,
    bpsOut: record.bpsOut,
    cpuPercent: record.cpuPercent,
    eventLoopDelayMs: record.eventLoopDelayMs,
    lastHeartbeatAt: record.lastHeartbeatAt === null ? null : new Date(record.lastHeartbeatAt).toISOString(),
    registeredAt: new Date(record.registeredAt).toISOString(),
    rooms,
    roomsOmitted: record.roomsOmitted,
  };
}
