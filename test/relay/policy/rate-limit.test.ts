/** The per-source limit on unauthenticated answers: bursts, lazy refill, the memory bound and eviction, odd clocks. */
import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_TRACKED_SOURCES, SourceRateLimiter } from "../../../relay/policy/rate-limit.js";

const T0 = 1_750_000_000_000;

/** How many of `count` requests from `source` at `nowMs` are answered. */
function answered(limiter: SourceRateLimiter, source: string, nowMs: number, count: number): number {
  let allowed = 0;
  for (let i = 0; i < count; i++) if (limiter.allow(source, nowMs)) allowed++;
  return allowed;
}

/** A distinct IPv4 address per index, as a flood of spoofed sources would bring. */
function ipv4(index: number): string {
  return `${(index >>> 24) & 255}.${(index >>> 16) & 255}.${(index >>> 8) & 255}.${index & 255}`;
}

describe("SourceRateLimiter", () => {
  it("answers a burst, then refuses, then refills with elapsed time up to the burst", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 10, burst: 5 });
    expect(answered(limiter, "198.51.100.7", T0, 5)).toBe(5);
    expect(limiter.allow("198.51.100.7", T0)).toBe(false);
    // 10/s: a token every 100 ms, half a token is not enough.
    expect(limiter.allow("198.51.100.7", T0 + 50)).toBe(false);
    expect(limiter.allow("198.51.100.7", T0 + 100)).toBe(true);
    expect(limiter.allow("198.51.100.7", T0 + 100)).toBe(false);
    expect(answered(limiter, "198.51.100.7", T0 + 350, 10)).toBe(2);
    // A long silence refills to the burst, not beyond.
    expect(answered(limiter, "198.51.100.7", T0 + 60_000, 100)).toBe(5);
  });

  it("keeps a bucket per source", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 1, burst: 2 });
    expect(answered(limiter, "192.0.2.1", T0, 10)).toBe(2);
    expect(answered(limiter, "192.0.2.2", T0, 10)).toBe(2);
    expect(answered(limiter, "2001:db8::1", T0, 10)).toBe(2);
    expect(limiter.trackedSources).toBe(3);
  });

  it("holds a 5,000 req/s one-source flood to burst + rate x seconds answers", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 20, burst: 40 });
    let allowed = 0;
    // 10 s of one request every 0.2 ms.
    for (let i = 0; i < 50_000; i++) if (limiter.allow("203.0.113.9", T0 + i * 0.2)) allowed++;
    expect(allowed).toBeGreaterThanOrEqual(40 + 199);
    expect(allowed).toBeLessThanOrEqual(40 + 200);
  });

  it("keeps no state and refuses nothing when ratePerSecond is 0", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 0, burst: 0 });
    for (let i = 0; i < 100_000; i++) expect(limiter.allow(ipv4(i % 7), T0)).toBe(true);
    expect(limiter.trackedSources).toBe(0);
  });

  it("tracks at most maxSources buckets under a flood of 100k distinct sources", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 5, burst: 10, maxSources: 1_000 });
    for (let i = 0; i < 100_000; i++) {
      expect(limiter.allow(ipv4(i), T0 + i)).toBe(true);
      expect(limiter.trackedSources).toBeLessThanOrEqual(1_000);
    }
    expect(limiter.trackedSources).toBe(1_000);
  });

  it("defaults maxSources to DEFAULT_MAX_TRACKED_SOURCES", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 5, burst: 10 });
    expect(limiter.maxSources).toBe(DEFAULT_MAX_TRACKED_SOURCES);
    for (let i = 0; i < 100_000; i++) limiter.allow(ipv4(i), T0);
    expect(limiter.trackedSources).toBe(DEFAULT_MAX_TRACKED_SOURCES);
  });

  it("evicts the least recently touched source, not the least recently added", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 0.001, burst: 1, maxSources: 3 });
    // Spend every bucket, so a source that was forgotten shows as answered again.
    for (const source of ["a", "b", "c"]) expect(limiter.allow(source, T0)).toBe(true);
    expect(limiter.allow("c", T0)).toBe(false); // touching the newest again changes nothing
    expect(limiter.allow("a", T0)).toBe(false); // touch order now b, c, a
    expect(limiter.allow("d", T0)).toBe(true); // full: b, the least recently touched, goes
    expect(limiter.trackedSources).toBe(3);
    expect(limiter.allow("a", T0)).toBe(false);
    expect(limiter.allow("c", T0)).toBe(false);
    expect(limiter.allow("d", T0)).toBe(false);
    expect(limiter.allow("b", T0)).toBe(true); // forgotten, so full again; evicts a (order was a, c, d)
    expect(limiter.allow("c", T0)).toBe(false);
    expect(limiter.allow("a", T0)).toBe(true);
  });

  it("keeps a flooding source's empty bucket while other sources come and go", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 0.001, burst: 3, maxSources: 100 });
    expect(answered(limiter, "203.0.113.9", T0, 3)).toBe(3);
    for (let i = 0; i < 10_000; i++) {
      limiter.allow(ipv4(i), T0);
      expect(limiter.allow("203.0.113.9", T0)).toBe(false);
    }
  });

  it("evicts exactly like a least-recently-used list over a long random run", () => {
    // burst 1 and a negligible rate: a source is answered exactly when it is not tracked (new or evicted).
    const limiter = new SourceRateLimiter({ ratePerSecond: 1e-9, burst: 1, maxSources: 50 });
    const model: string[] = [];
    let seed = 12_345;
    for (let step = 0; step < 50_000; step++) {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      // Mostly a small hot set (touches), sometimes a wide one (admissions and evictions).
      const key = `s${seed % 4 === 0 ? seed % 1_000 : seed % 60}`;
      const at = model.indexOf(key);
      expect(limiter.allow(key, T0)).toBe(at === -1);
      if (at !== -1) model.splice(at, 1);
      model.push(key);
      if (model.length > 50) model.shift();
      expect(limiter.trackedSources).toBe(model.length);
    }
  });

  it("stays cheap while evicting under a flood of rotating sources", () => {
    // Finding the oldest key with a fresh iterator each time costs ~6 µs a request here (it steps over the
    // deleted entries at the front of the Map); the limiter's long-lived cursor costs well under 1 µs.
    const limiter = new SourceRateLimiter({ ratePerSecond: 20, burst: 40 });
    const sources = Array.from({ length: 100_000 }, (_, i) => ipv4(i));
    const started = performance.now();
    for (let i = 0; i < 500_000; i++) limiter.allow(sources[i % sources.length] ?? "", T0 + i);
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(limiter.trackedSources).toBe(DEFAULT_MAX_TRACKED_SOURCES);
  });

  it("starts an evicted source with a full bucket", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 1, burst: 3, maxSources: 10 });
    expect(answered(limiter, "198.51.100.1", T0, 10)).toBe(3);
    for (let i = 0; i < 10; i++) limiter.allow(ipv4(i), T0);
    expect(answered(limiter, "198.51.100.1", T0, 10)).toBe(3);
  });

  it("handles maxSources 1", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 0.001, burst: 1, maxSources: 1 });
    expect(limiter.allow("a", T0)).toBe(true);
    expect(limiter.allow("a", T0)).toBe(false);
    expect(limiter.allow("b", T0)).toBe(true);
    expect(limiter.allow("a", T0)).toBe(true);
    expect(limiter.trackedSources).toBe(1);
  });

  it("survives NaN and backward clock readings", () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 10, burst: 2 });
    // A new source first seen with a NaN clock still starts full.
    expect(limiter.allow("192.0.2.5", Number.NaN)).toBe(true);
    expect(answered(limiter, "192.0.2.1", T0, 5)).toBe(2);
    // NaN: no time passed, no tokens, and the bucket is not poisoned.
    expect(answered(limiter, "192.0.2.1", Number.NaN, 5)).toBe(0);
    expect(limiter.allow("192.0.2.1", T0 + 100)).toBe(true);
    expect(limiter.allow("192.0.2.1", T0 + 100)).toBe(false);
    // The clock steps back an hour: no tokens for negative time, and refill resumes from the new reading
    // rather than waiting an hour for the old one.
    const back = T0 - 3_600_000;
    expect(limiter.allow("192.0.2.1", back)).toBe(false);
    expect(limiter.allow("192.0.2.1", back + 100)).toBe(true);
    expect(limiter.allow("192.0.2.1", back + 100)).toBe(false);
    // Negative and infinite readings do not break it either.
    expect(limiter.allow("192.0.2.1", -5)).toBe(false);
    expect(limiter.allow("192.0.2.1", 95)).toBe(true);
    expect(answered(limiter, "192.0.2.1", Number.POSITIVE_INFINITY, 5)).toBe(0); // no credit for an infinite gap
    expect(limiter.allow("192.0.2.1", T0)).toBe(false);
    expect(limiter.allow("192.0.2.1", T0 + 100)).toBe(true);
  });

  it("rejects options it cannot honour, saying which", () => {
    expect(() => new SourceRateLimiter({ ratePerSecond: -1, burst: 5 })).toThrow(/ratePerSecond/);
    expect(() => new SourceRateLimiter({ ratePerSecond: Number.NaN, burst: 5 })).toThrow(/ratePerSecond/);
    expect(() => new SourceRateLimiter({ ratePerSecond: Number.POSITIVE_INFINITY, burst: 5 })).toThrow(/ratePerSecond/);
    expect(() => new SourceRateLimiter({ ratePerSecond: 5, burst: 0 })).toThrow(/burst/);
    expect(() => new SourceRateLimiter({ ratePerSecond: 5, burst: Number.NaN })).toThrow(/burst/);
    expect(() => new SourceRateLimiter({ ratePerSecond: 5, burst: 5, maxSources: 0 })).toThrow(/maxSources/);
    expect(() => new SourceRateLimiter({ ratePerSecond: 5, burst: 5, maxSources: 1.5 })).toThrow(/maxSources/);
    expect(() => new SourceRateLimiter({ ratePerSecond: 5, burst: 5, maxSources: Number.NaN })).toThrow(RangeError);
  });
});
