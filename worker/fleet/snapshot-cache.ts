/**
 * The fleet as this isolate last saw it. `/v1/ice-servers`, `/v1/turn-credentials` and every join
 * need the fleet's relays; asking the fleet object each time would put a Durable Object round trip
 * (and the one object's throughput) on every request. So each isolate asks at most once per
 * SNAPSHOT_MAX_AGE_MS, with one request in flight that concurrent callers share. A relay that turns
 * draining stops being handed out within that age plus one heartbeat's trip: well within 1 s.
 *
 * A failed call is logged and remembered for the same period as an empty answer would be: callers
 * fall back to TURN_URLS rather than wait on, or hammer, an unhealthy fleet object.
 */
import type { FleetSnapshot } from "./fleet-object.js";

export const SNAPSHOT_MAX_AGE_MS = 750;

export class FleetSnapshotCache {
  private latest: { at: number; snapshot: FleetSnapshot | null } | null = null;
  private inFlight: Promise<FleetSnapshot | null> | null = null;

  constructor(private readonly clock: () => number = Date.now, private readonly maxAgeMs = SNAPSHOT_MAX_AGE_MS) {}

  /** The snapshot, fresh within `maxAgeMs`, or null when the fleet object could not be asked. */
  async get(load: () => Promise<FleetSnapshot>): Promise<FleetSnapshot | null> {
    if (this.latest !== null && this.clock() - this.latest.at < this.maxAgeMs) return this.latest.snapshot;
    if (this.inFlight !== null) return this.inFlight;
    const asked = this.clock();
    this.inFlight = load().then(
      (snapshot) => snapshot,
      (error: unknown) => {
        console.error("fleet: the fleet object did not answer; handing out TURN_URLS meanwhile", error);
        return null;
      },
    );
    try {
      const snapshot = await this.inFlight;
      this.latest = { at: asked, snapshot };
      return snapshot;
    } finally {
      this.inFlight = null;
    }
  }

  /** Forgets the last answer (tests start each case from an empty fleet). */
  clear(): void {
    this.latest = null;
  }
}

/** This isolate's cache: there is one fleet object per Worker, so one cache per isolate. */
export const fleetSnapshots = new FleetSnapshotCache();
