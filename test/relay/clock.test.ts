/**
 * The data path's clock (relay/clock.ts): right to within its tick while packets read it, and no
 * timer of its own once nobody does, so an idle relay is not woken ten times a second.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CoarseClock } from "../../relay/clock.js";

const TICK_MS = 100;
const T0 = 1_700_000_000_000;

describe("CoarseClock", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    vi.setSystemTime(T0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("keeps the time it was made at until it is started", () => {
    const clock = new CoarseClock(TICK_MS);
    vi.advanceTimersByTime(5_000);
    expect(clock.now).toBe(T0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("is right to within a tick while it is read", () => {
    const clock = new CoarseClock(TICK_MS);
    clock.start();
    expect(clock.now).toBe(T0);
    for (let step = 1; step <= 50; step++) {
      vi.advanceTimersByTime(TICK_MS / 2);
      const lag = Date.now() - clock.now;
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(TICK_MS);
    }
    expect(vi.getTimerCount()).toBe(1);
    clock.stop();
  });

  it("stops ticking once a whole tick passes without a read", () => {
    const clock = new CoarseClock(TICK_MS);
    clock.start();
    expect(vi.getTimerCount()).toBe(0); // nothing has read it yet
    void clock.now;
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(TICK_MS); // the read above was since the last tick: keeps going
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(TICK_MS); // no read in this tick: stops
    expect(vi.getTimerCount()).toBe(0);
  });

  it("takes the time afresh on the first read after sleeping, and ticks again", () => {
    const clock = new CoarseClock(TICK_MS);
    clock.start();
    void clock.now;
    vi.advanceTimersByTime(10 * TICK_MS);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000); // a quiet minute: no tick, no stale time after it
    expect(clock.now).toBe(T0 + 10 * TICK_MS + 60_000);
    expect(vi.getTimerCount()).toBe(1);
  });

  it("stops for good when stopped, reads and all", () => {
    const clock = new CoarseClock(TICK_MS);
    clock.start();
    void clock.now;
    clock.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(clock.now).toBe(T0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
