/** Byte buckets for max-bps and bps-capacity: bursts, drops and their counts, sustained rate, takeBoth, odd input. */
import { describe, expect, it } from "vitest";
import { ByteBucket, MIN_DEFAULT_BURST_BYTES, takeBoth } from "../../../relay/policy/bandwidth.js";

const T0 = 1_750_000_000_000;

/**
 * Offers `packetBytes` packets at `offeredBytesPerSecond` from `startMs` for `seconds` (1 ms ticks) through
 * `pass`; returns the bytes let through.
 */
function offer(pass: (bytes: number, nowMs: number) => boolean, packetBytes: number, offeredBytesPerSecond: number, startMs: number, seconds: number): number {
  let passed = 0;
  let sent = 0;
  for (let ms = 0; ms < seconds * 1000; ms++) {
    const due = Math.floor(((ms + 1) * offeredBytesPerSecond) / (packetBytes * 1000));
    for (; sent < due; sent++) if (pass(packetBytes, startMs + ms)) passed += packetBytes;
  }
  return passed;
}

describe("ByteBucket", () => {
  it("defaults the burst to one second's worth, at least 64 KiB", () => {
    expect(MIN_DEFAULT_BURST_BYTES).toBe(65_536);
    expect(new ByteBucket(1_000).burstBytes).toBe(65_536);
    expect(new ByteBucket(2_000_000).burstBytes).toBe(2_000_000);
    expect(new ByteBucket(1_000, 3_000).burstBytes).toBe(3_000);
  });

  it("lets a burst through, drops the excess and counts the bytes and packets dropped", () => {
    const bucket = new ByteBucket(1_000, 3_000);
    expect(bucket.take(1_000, T0)).toBe(true);
    expect(bucket.take(1_000, T0)).toBe(true);
    expect(bucket.take(1_000, T0)).toBe(true);
    expect(bucket.take(1_000, T0)).toBe(false);
    expect(bucket.dropped).toBe(1_000);
    expect(bucket.droppedPackets).toBe(1);
    // 1,000 B/s: 500 ms brings 500 bytes, enough for a small packet but not a large one.
    expect(bucket.take(600, T0 + 500)).toBe(false);
    expect(bucket.take(500, T0 + 500)).toBe(true);
    expect(bucket.take(1, T0 + 500)).toBe(false);
    expect(bucket.dropped).toBe(1_601);
    expect(bucket.droppedPackets).toBe(3);
    // A long silence refills to the burst, not beyond.
    expect(bucket.take(3_000, T0 + 60_000)).toBe(true);
    expect(bucket.take(1, T0 + 60_000)).toBe(false);
  });

  it("never lets through a packet larger than the bucket", () => {
    const bucket = new ByteBucket(1_000, 3_000);
    expect(bucket.take(3_001, T0 + 3_600_000)).toBe(false);
    expect(bucket.dropped).toBe(3_001);
    expect(bucket.take(3_000, T0 + 3_600_000)).toBe(true);
  });

  it("lets a 65,535-byte packet through a default bucket however low the rate", () => {
    const bucket = new ByteBucket(1);
    expect(bucket.take(65_535, T0)).toBe(true);
  });

  it("refuses nothing and counts nothing when bytesPerSecond is 0", () => {
    const bucket = new ByteBucket(0);
    for (let i = 0; i < 1_000; i++) expect(bucket.take(1_000_000_000, T0)).toBe(true);
    expect(bucket.take(Number.NaN, Number.NaN)).toBe(true);
    expect(bucket.canTake(1_000_000_000, T0)).toBe(true);
    expect(bucket.dropped).toBe(0);
    expect(bucket.droppedPackets).toBe(0);
  });

  it("holds a sustained offered load of twice the rate to the rate over 10 s (±5 %)", () => {
    const rate = 1_000_000;
    const bucket = new ByteBucket(rate);
    const pass = (bytes: number, nowMs: number): boolean => bucket.take(bytes, nowMs);
    // The first second spends the burst; then measure 10 s.
    offer(pass, 1_200, 2 * rate, T0, 1);
    const passed = offer(pass, 1_200, 2 * rate, T0 + 1_000, 10);
    expect(passed / 10).toBeGreaterThanOrEqual(rate * 0.95);
    expect(passed / 10).toBeLessThanOrEqual(rate * 1.05);
    expect(bucket.droppedPackets).toBeGreaterThan(0);
  });

  it("holds bursty senders with a coarse clock to the rate too", () => {
    const rate = 250_000;
    const bucket = new ByteBucket(rate, 65_536);
    let passed = 0;
    // 100 ms clock ticks, 40 packets of 1,000 bytes per tick (400 kB/s offered), 10 s.
    for (let tick = 0; tick < 100; tick++) {
      for (let i = 0; i < 40; i++) if (bucket.take(1_000, T0 + tick * 100)) passed += 1_000;
    }
    const expected = 65_536 + rate * 9.9;
    expect(passed).toBeGreaterThanOrEqual(expected * 0.95);
    expect(passed).toBeLessThanOrEqual(expected * 1.05);
  });

  it("drops nothing below the rate", () => {
    const bucket = new ByteBucket(1_000_000);
    const passed = offer((bytes, nowMs) => bucket.take(bytes, nowMs), 1_000, 900_000, T0, 10);
    expect(passed).toBe(9_000_000);
    expect(bucket.droppedPackets).toBe(0);
  });

  it("canTake charges and counts nothing", () => {
    const bucket = new ByteBucket(1_000, 2_000);
    expect(bucket.canTake(2_000, T0)).toBe(true);
    expect(bucket.canTake(2_001, T0)).toBe(false);
    expect(bucket.take(2_000, T0)).toBe(true);
    expect(bucket.canTake(1, T0)).toBe(false);
    expect(bucket.droppedPackets).toBe(0);
  });

  it("refuses sizes that are not a number >= 0 without adding bytes or breaking the counters", () => {
    const bucket = new ByteBucket(1_000, 2_000);
    expect(bucket.take(2_000, T0)).toBe(true);
    expect(bucket.take(-1_000_000, T0)).toBe(false); // would otherwise refill the bucket
    expect(bucket.take(Number.NaN, T0)).toBe(false);
    expect(bucket.take(Number.POSITIVE_INFINITY, T0)).toBe(false);
    expect(bucket.take(Number.NEGATIVE_INFINITY, T0)).toBe(false);
    expect(bucket.take(1, T0)).toBe(false);
    expect(bucket.dropped).toBe(1);
    expect(bucket.droppedPackets).toBe(5);
    expect(bucket.take(0, T0)).toBe(true);
    expect(bucket.take(1_000, T0 + 1_000)).toBe(true);
  });

  it("survives NaN and backward clock readings", () => {
    const bucket = new ByteBucket(1_000, 2_000);
    expect(bucket.take(1_500, Number.NaN)).toBe(true); // starts full, whatever the first reading
    expect(bucket.take(1_000, T0)).toBe(false);
    expect(bucket.take(1_000, Number.NaN)).toBe(false); // NaN: no time passed
    expect(bucket.take(500, T0 + 500)).toBe(true); // 500 + 500 - 500, not poisoned by NaN
    expect(bucket.take(501, T0 + 500)).toBe(false);
    // The clock steps back an hour: no bytes for negative time, and refill resumes from the new reading.
    const back = T0 - 3_600_000;
    expect(bucket.take(501, back)).toBe(false);
    expect(bucket.take(1_000, back + 500)).toBe(true);
    expect(bucket.take(1, back + 500)).toBe(false);
    expect(bucket.take(1, Number.POSITIVE_INFINITY)).toBe(false); // no credit for an infinite gap
    expect(bucket.take(1, back + 1_500)).toBe(false); // back from infinity: no credit, counting resumes here
    expect(bucket.take(1_000, back + 2_500)).toBe(true);
    expect(bucket.dropped).toBe(1_000 + 1_000 + 501 + 501 + 1 + 1 + 1);
    expect(Number.isFinite(bucket.dropped)).toBe(true);
  });

  it("rejects a rate or burst it cannot honour, saying which", () => {
    expect(() => new ByteBucket(-1)).toThrow(/bytesPerSecond/);
    expect(() => new ByteBucket(Number.NaN)).toThrow(/bytesPerSecond/);
    expect(() => new ByteBucket(Number.POSITIVE_INFINITY)).toThrow(/bytesPerSecond/);
    expect(() => new ByteBucket(1_000, 0)).toThrow(/burstBytes/);
    expect(() => new ByteBucket(1_000, -5)).toThrow(/burstBytes/);
    expect(() => new ByteBucket(1_000, Number.NaN)).toThrow(/burstBytes/);
  });
});

describe("takeBoth", () => {
  it("charges both buckets when both allow", () => {
    const allocation = new ByteBucket(1_000, 3_000);
    const global = new ByteBucket(1_000, 5_000);
    expect(takeBoth(allocation, global, 2_000, T0)).toBe(true);
    expect(allocation.canTake(1_000, T0)).toBe(true);
    expect(allocation.canTake(1_001, T0)).toBe(false);
    expect(global.canTake(3_000, T0)).toBe(true);
    expect(global.canTake(3_001, T0)).toBe(false);
  });

  it("does not charge the allocation when the global bucket refuses", () => {
    const allocation = new ByteBucket(1_000, 3_000);
    const global = new ByteBucket(1_000, 1_000);
    expect(takeBoth(allocation, global, 1_000, T0)).toBe(true);
    for (let i = 0; i < 10; i++) expect(takeBoth(allocation, global, 1_000, T0)).toBe(false);
    expect(global.droppedPackets).toBe(10);
    expect(global.dropped).toBe(10_000);
    expect(allocation.droppedPackets).toBe(0);
    // Only the one packet that passed was charged to the allocation.
    expect(allocation.take(2_000, T0)).toBe(true);
    expect(allocation.take(1, T0)).toBe(false);
  });

  it("does not charge the global bucket when the allocation refuses", () => {
    const allocation = new ByteBucket(1_000, 1_000);
    const global = new ByteBucket(1_000, 3_000);
    expect(takeBoth(allocation, global, 1_000, T0)).toBe(true);
    for (let i = 0; i < 10; i++) expect(takeBoth(allocation, global, 1_000, T0)).toBe(false);
    expect(allocation.droppedPackets).toBe(10);
    expect(global.droppedPackets).toBe(0);
    expect(global.take(2_000, T0)).toBe(true);
    expect(global.take(1, T0)).toBe(false);
  });

  it("counts a packet both would refuse once, against the allocation", () => {
    const allocation = new ByteBucket(1_000, 1_000);
    const global = new ByteBucket(1_000, 1_000);
    expect(takeBoth(allocation, global, 1_001, T0)).toBe(false);
    expect(allocation.droppedPackets).toBe(1);
    expect(global.droppedPackets).toBe(0);
  });

  it("treats null as no limit", () => {
    const bucket = new ByteBucket(1_000, 1_000);
    expect(takeBoth(null, null, 1_000_000, T0)).toBe(true);
    expect(takeBoth(bucket, null, 1_000, T0)).toBe(true);
    expect(takeBoth(bucket, null, 1, T0)).toBe(false);
    const other = new ByteBucket(1_000, 1_000);
    expect(takeBoth(null, other, 1_000, T0)).toBe(true);
    expect(takeBoth(null, other, 1, T0)).toBe(false);
  });

  it("holds many allocations to the global capacity over 10 s (±5 %)", () => {
    const capacity = 2_000_000;
    const global = new ByteBucket(capacity);
    const allocations = Array.from({ length: 8 }, () => new ByteBucket(500_000));
    let passed = 0;
    // 8 allocations each offering 400 kB/s (a 1,000-byte packet in 2 of every 5 ms; 3.2 MB/s in all), for 11 s;
    // measure the last 10.
    for (let ms = 0; ms < 11_000; ms++) {
      if (ms % 5 >= 2) continue;
      for (const allocation of allocations) {
        if (takeBoth(allocation, global, 1_000, T0 + ms) && ms >= 1_000) passed += 1_000;
      }
    }
    expect(global.droppedPackets).toBeGreaterThan(0);
    expect(passed / 10).toBeGreaterThanOrEqual(capacity * 0.95);
    expect(passed / 10).toBeLessThanOrEqual(capacity * 1.05);
    for (const allocation of allocations) expect(allocation.droppedPackets).toBe(0);
  });
});
