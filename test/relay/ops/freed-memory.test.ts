/**
 * Giving freed C heap back to the system: when the relay asks (after a burst of allocations has
 * settled, never during one), and that the addon's trim really returns pages glibc was holding.
 */
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { describe, expect, it } from "vitest";
import { FreedMemoryReturn } from "../../../relay/ops/freed-memory.js";
import { loadNativeUdp, trimFreedNativeMemory } from "../../../relay/transport/native-udp.js";

/** A schedule of 3 changes and 10 s, with the trims it made. */
function schedule() {
  const trims: number[] = [];
  let now = 0;
  const memory = new FreedMemoryReturn(() => trims.push(now), 3, 10_000);
  return {
    trims,
    changed: (count: number) => {
      for (let i = 0; i < count; i++) memory.changed();
    },
    tick: (at: number) => {
      now = at;
      return memory.tick(at);
    },
  };
}

describe("when the relay gives freed memory back", () => {
  it("once enough allocations opened or ended and a tick found nothing new since the one before", () => {
    const s = schedule();
    s.changed(2);
    expect(s.tick(1_000)).toBe(false); // changes under way
    expect(s.tick(2_000)).toBe(false); // settled, but only 2
    s.changed(1);
    expect(s.tick(3_000)).toBe(false); // the third came since the last tick
    expect(s.tick(4_000)).toBe(true);
    expect(s.trims).toEqual([4_000]);
  });

  it("never while changes keep coming, however many", () => {
    const s = schedule();
    for (let at = 1_000; at <= 60_000; at += 1_000) {
      s.changed(100);
      expect(s.tick(at)).toBe(false);
    }
    expect(s.tick(61_000)).toBe(true);
  });

  it("at most once per interval, and counts anew after each trim", () => {
    const s = schedule();
    s.changed(3);
    s.tick(1_000);
    expect(s.tick(2_000)).toBe(true);
    s.changed(3);
    s.tick(3_000);
    expect(s.tick(4_000)).toBe(false); // 2 s after the last trim
    expect(s.tick(12_000)).toBe(true);
    expect(s.tick(30_000)).toBe(false); // nothing changed since
    expect(s.trims).toEqual([2_000, 12_000]);
  });
});

describe.skipIf(!loadNativeUdp().ok)("the addon's trim", () => {
  it("gives back pages freed in the middle of the C heap, which glibc would keep", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    // Buffers of 16 KiB are malloc'ed from the heap (not mmap'ed); keeping every tenth leaves the
    // freed ones between kept ones, where only a trim can return them.
    let buffers: (Buffer | undefined)[] = Array.from({ length: 4_000 }, () => Buffer.allocUnsafeSlow(16 * 1024).fill(1));
    const kept = buffers.filter((_, index) => index % 10 === 0);
    buffers = [];
    gc();
    gc();
    expect(trimFreedNativeMemory()).toBe(true);
    // What was kept is untouched.
    expect(kept.every((buffer) => buffer?.[0] === 1 && buffer.length === 16 * 1024)).toBe(true);
  });
});
