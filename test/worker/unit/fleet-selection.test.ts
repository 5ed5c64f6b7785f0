// The selection policy on its own, with a fixed clock: eligibility, order by distance and load.
import { describe, expect, it } from "vitest";
import { LIVE_WITHIN_MS } from "../../../shared/fleet/protocol.js";
import { distanceKm, isEligible, loadOf, orderRelays, pickRelays, type FleetRelay } from "../../../worker/fleet/selection.js";

const NOW = 1_800_000_000_000;
const FRANKFURT = { lat: 50.11, lon: 8.68 };
const PARIS = { lat: 48.86, lon: 2.35 };
const NEW_YORK = { lat: 40.71, lon: -74.01 };
const WIESBADEN = { lat: 50.08, lon: 8.24 }; // ~32 km from Frankfurt

function relay(id: string, extra: Partial<FleetRelay> = {}): FleetRelay {
  return {
    id,
    urls: [`turn:${id}.example:3478`],
    location: null,
    capacity: { allocations: 0, bps: 0 },
    state: "ready",
    connected: true,
    lastHeartbeatAt: NOW - 1000,
    allocations: 0,
    bpsIn: 0,
    bpsOut: 0,
    ...extra,
  };
}

const ids = (relays: FleetRelay[]) => relays.map((r) => r.id);

describe("distanceKm", () => {
  it("measures great-circle distance", () => {
    expect(distanceKm(FRANKFURT, PARIS)).toBeGreaterThan(470);
    expect(distanceKm(FRANKFURT, PARIS)).toBeLessThan(490);
    expect(distanceKm(FRANKFURT, NEW_YORK)).toBeGreaterThan(6100);
    expect(distanceKm(FRANKFURT, FRANKFURT)).toBe(0);
  });
});

describe("eligibility", () => {
  it("needs a heartbeat within LIVE_WITHIN_MS, state ready and room below capacity", () => {
    expect(isEligible(relay("a"), NOW)).toBe(true);
    expect(isEligible(relay("a", { lastHeartbeatAt: NOW - LIVE_WITHIN_MS }), NOW)).toBe(true);
    expect(isEligible(relay("a", { lastHeartbeatAt: NOW - LIVE_WITHIN_MS - 1 }), NOW)).toBe(false);
    expect(isEligible(relay("a", { lastHeartbeatAt: null }), NOW)).toBe(false);
    expect(isEligible(relay("a", { state: "draining" }), NOW)).toBe(false);
    expect(isEligible(relay("a", { capacity: { allocations: 10, bps: 0 }, allocations: 10 }), NOW)).toBe(false);
    expect(isEligible(relay("a", { capacity: { allocations: 10, bps: 0 }, allocations: 9 }), NOW)).toBe(true);
    expect(isEligible(relay("a", { capacity: { allocations: 0, bps: 1000 }, bpsIn: 600, bpsOut: 400 }), NOW)).toBe(false);
    expect(isEligible(relay("a", { capacity: { allocations: 0, bps: 1000 }, bpsIn: 600, bpsOut: 399 }), NOW)).toBe(true);
  });
});

describe("load", () => {
  it("is the larger fraction of capacity, or raw allocations without capacity", () => {
    expect(loadOf(relay("a", { capacity: { allocations: 100, bps: 1000 }, allocations: 10, bpsIn: 300, bpsOut: 200 }))).toBe(0.5);
    expect(loadOf(relay("a", { capacity: { allocations: 100, bps: 0 }, allocations: 25, bpsIn: 1e9 }))).toBe(0.25);
    expect(loadOf(relay("a", { allocations: 7 }))).toBe(7);
  });
});

describe("order", () => {
  it("puts the nearest first and unlocated relays last", () => {
    const relays = [relay("ny", { location: NEW_YORK }), relay("nowhere"), relay("paris", { location: PARIS }), relay("fra", { location: FRANKFURT })];
    expect(ids(orderRelays(relays, FRANKFURT))).toEqual(["fra", "paris", "ny", "nowhere"]);
    expect(ids(orderRelays(relays, NEW_YORK))).toEqual(["ny", "paris", "fra", "nowhere"]);
  });

  it("counts distances within 50 km as a tie and breaks it by load", () => {
    const relays = [relay("fra", { location: FRANKFURT, allocations: 9 }), relay("wie", { location: WIESBADEN, allocations: 2 }), relay("paris", { location: PARIS })];
    expect(ids(orderRelays(relays, FRANKFURT))).toEqual(["wie", "fra", "paris"]);
    // Without a tie, distance wins over load.
    expect(ids(orderRelays([relay("fra", { location: FRANKFURT, allocations: 9 }), relay("paris", { location: PARIS })], FRANKFURT))).toEqual(["fra", "paris"]);
  });

  it("orders by load alone when the caller's location is unknown", () => {
    const relays = [relay("a", { location: FRANKFURT, allocations: 5 }), relay("b", { allocations: 1 }), relay("c", { location: PARIS, allocations: 3 })];
    expect(ids(orderRelays(relays, null))).toEqual(["b", "c", "a"]);
  });
});

describe("pickRelays", () => {
  it("takes the best `count` eligible relays, leaving out the excluded one", () => {
    const relays = [
      relay("fra", { location: FRANKFURT }),
      relay("paris", { location: PARIS }),
      relay("stale", { location: FRANKFURT, lastHeartbeatAt: NOW - 20_000 }),
      relay("draining", { location: FRANKFURT, state: "draining" }),
      relay("full", { location: FRANKFURT, capacity: { allocations: 1, bps: 0 }, allocations: 1 }),
      relay("ny", { location: NEW_YORK }),
    ];
    expect(ids(pickRelays(relays, FRANKFURT, 2, NOW))).toEqual(["fra", "paris"]);
    expect(ids(pickRelays(relays, FRANKFURT, 2, NOW, "fra"))).toEqual(["paris", "ny"]);
    expect(ids(pickRelays(relays, FRANKFURT, 10, NOW))).toEqual(["fra", "paris", "ny"]);
    expect(pickRelays(relays, FRANKFURT, 2, NOW + 60_000)).toEqual([]);
  });

  it("hands out a relay whose control channel closed only after every connected one, however near it is", () => {
    // A closed channel is how a killed relay first shows (its last heartbeat is still fresh).
    const relays = [relay("fra-killed", { location: FRANKFURT, connected: false }), relay("paris", { location: PARIS }), relay("ny", { location: NEW_YORK })];
    expect(ids(pickRelays(relays, FRANKFURT, 1, NOW))).toEqual(["paris"]);
    expect(ids(pickRelays(relays, FRANKFURT, 3, NOW))).toEqual(["paris", "ny", "fra-killed"]);
    // Alone (a Worker redeploy closes every channel for a moment), it still serves.
    expect(ids(pickRelays([relay("fra-killed", { location: FRANKFURT, connected: false })], FRANKFURT, 2, NOW))).toEqual(["fra-killed"]);
  });
});
