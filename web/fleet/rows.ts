/**
 * The fleet table's content, from `/v1/fleet`'s JSON: pure, so the page only puts text in cells.
 */
import type { FleetView, RelayView } from "../../shared/fleet/view.js";

/** One row's cells, in the order of the table's columns. */
export type RelayRow = string[];

function bits(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kbit/s`;
  return `${Math.round(bps)} bit/s`;
}

function age(iso: string | null, nowMs: number): string {
  if (iso === null) return "never";
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  return seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

/** What an operator needs to know first: may it be handed out, and if not, why not. */
export function stateLabel(relay: RelayView): string {
  if (!relay.live) return relay.connected ? "silent" : "lost";
  if (relay.state === "draining") return "draining";
  const full = relay.capacity.allocations > 0 && relay.allocations >= relay.capacity.allocations;
  return full ? "full" : "ready";
}

export function relayRow(relay: RelayView, nowMs: number): RelayRow {
  const capacity = relay.capacity.allocations > 0 ? ` / ${relay.capacity.allocations}` : "";
  return [
    relay.id,
    stateLabel(relay),
    relay.region || "–",
    relay.location === null ? "–" : `${relay.location.lat.toFixed(2)}, ${relay.location.lon.toFixed(2)}`,
    `${relay.allocations}${capacity}`,
    bits(relay.bpsIn),
    bits(relay.bpsOut),
    `${relay.cpuPercent.toFixed(0)} %`,
    `${relay.eventLoopDelayMs.toFixed(1)} ms`,
    String(relay.rooms.length + relay.roomsOmitted),
    age(relay.lastHeartbeatAt, nowMs),
    relay.urls.join(" "),
    relay.version,
  ];
}

/** Refusal counters in one line, or "" when there were none. */
export function refusalsLine(refusals: FleetView["refusals"]): string {
  const entries = Object.entries(refusals).filter((entry): entry is [string, number] => (entry[1] ?? 0) > 0);
  return entries.length === 0 ? "" : `Refused control channels: ${entries.map(([reason, count]) => `${reason} ${count}`).join(", ")}`;
}
