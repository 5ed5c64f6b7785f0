/**
 * `GET /v1/fleet` (API key): every relay the fleet knows, with its state, load, location and last
 * heartbeat, and the connections refused by reason. Pure: records and a clock in, JSON out. The
 * shape is a contract with the /fleet page and operators' scripts, so it lives in shared/fleet/view.ts.
 */
import type { RoomLoad } from "../../shared/fleet/protocol.js";
import type { RelayView } from "../../shared/fleet/view.js";
import type { RelayRecord } from "./fleet-store.js";
import { isLive } from "./selection.js";

export function operatorRelay(record: RelayRecord, rooms: RoomLoad[], now: number): RelayView {
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
