/**
 * The register message: who the relay is, where clients reach it, and what it is sized for. Pure,
 * apart from `relayVersion`, which reads a package.json once at start.
 */
import { readFileSync } from "node:fs";
import { FLEET_LIMITS, type RegisterMessage } from "../../shared/fleet/protocol.js";
import type { FleetConfig } from "../config.js";

export interface Capacity {
  /** --total-quota: allocations at once; 0 for no limit. */
  totalQuota: number;
  /** --bps-capacity: bytes per second for all allocations together; 0 for no limit. */
  bpsCapacity: number;
}

export function registerMessage(fleet: Pick<FleetConfig, "relayId" | "region" | "location">, urls: readonly string[], capacity: Capacity, version: string): RegisterMessage {
  return {
    type: "register",
    relayId: fleet.relayId,
    version: version.slice(0, FLEET_LIMITS.maxVersionLength),
    urls: [...urls],
    region: fleet.region,
    location: fleet.location,
    // The fleet counts bits (in + out); --bps-capacity is bytes.
    capacity: { allocations: capacity.totalQuota, bps: capacity.bpsCapacity * 8 },
  };
}

/**
 * The relay's version: the nearest package.json's, looking up from this module. From source that is
 * the repository's; in the bundle (scripts/build-relay.mjs) it is the one written beside relay.mjs.
 */
export function relayVersion(from: string | URL = import.meta.url): string {
  let dir = new URL(".", from);
  for (let level = 0; level < 4; level++) {
    try {
      const version = (JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { version?: unknown }).version;
      if (typeof version === "string" && version.length > 0) return version;
    } catch {
      // No package.json here (or not ours to read): look one level up.
    }
    const parent = new URL("..", dir);
    if (parent.href === dir.href) break;
    dir = parent;
  }
  return "unknown";
}
