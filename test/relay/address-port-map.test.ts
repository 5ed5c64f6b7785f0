/**
 * AddressPortMap (relay/allocation/peer-map.ts): the data path's (address, port) lookup. Each port
 * keeps its first address inline and the others in a Map, so the cases that matter are the ports
 * several addresses share: every value stays findable under its own (address, port) and no other,
 * whichever of them is deleted first, and the count stays right. Checked against a plain Map keyed
 * by "address|port" over a long random sequence of operations.
 */
import { describe, expect, it } from "vitest";
import { AddressPortMap } from "../../relay/allocation/peer-map.js";

describe("AddressPortMap", () => {
  it("keeps several addresses at one port apart, whichever is deleted first", () => {
    const map = new AddressPortMap<string>();
    map.set("192.0.2.1", 5000, "a");
    map.set("192.0.2.2", 5000, "b");
    map.set("2001:db8::1", 5000, "c");
    map.set("192.0.2.1", 5001, "d");
    expect(map.size).toBe(4);
    expect([map.get("192.0.2.1", 5000), map.get("192.0.2.2", 5000), map.get("2001:db8::1", 5000), map.get("192.0.2.1", 5001)]).toEqual(["a", "b", "c", "d"]);
    expect(map.get("192.0.2.3", 5000)).toBeUndefined();
    expect(map.get("192.0.2.2", 5001)).toBeUndefined();

    // The inline (first) address goes: the others are still found, under their own address only.
    expect(map.delete("192.0.2.1", 5000)).toBe(true);
    expect(map.get("192.0.2.1", 5000)).toBeUndefined();
    expect(map.get("192.0.2.2", 5000)).toBe("b");
    expect(map.get("2001:db8::1", 5000)).toBe("c");
    expect(map.size).toBe(3);
    expect(map.delete("192.0.2.1", 5000)).toBe(false);
    expect(map.size).toBe(3);

    // Replacing a value counts nothing new, inline or not.
    map.set("192.0.2.2", 5000, "b2");
    map.set("2001:db8::1", 5000, "c2");
    expect(map.size).toBe(3);
    expect([...map.values()].sort()).toEqual(["b2", "c2", "d"]);

    expect(map.delete("2001:db8::1", 5000)).toBe(true);
    expect(map.delete("192.0.2.2", 5000)).toBe(true);
    expect(map.get("192.0.2.2", 5000)).toBeUndefined();
    expect(map.size).toBe(1);
    expect([...map.values()]).toEqual(["d"]);
    // A port emptied and used again starts afresh.
    map.set("192.0.2.9", 5000, "e");
    expect(map.get("192.0.2.9", 5000)).toBe("e");
    expect(map.size).toBe(2);
  });

  it("agrees with a plain map over a long random sequence of sets and deletes", () => {
    const map = new AddressPortMap<number>();
    const model = new Map<string, number>();
    const addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "::1", "fe80::2"];
    const ports = [1, 2, 3];
    // A fixed linear congruential sequence: the same operations on every run.
    let seed = 12345;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let step = 0; step < 5000; step++) {
      const address = addresses[next(addresses.length)]!;
      const port = ports[next(ports.length)]!;
      const key = `${address}|${port}`;
      if (next(3) === 0) {
        expect(map.delete(address, port)).toBe(model.delete(key));
      } else {
        map.set(address, port, step);
        model.set(key, step);
      }
      expect(map.size).toBe(model.size);
      for (const a of addresses) for (const p of ports) expect(map.get(a, p)).toBe(model.get(`${a}|${p}`));
    }
    expect([...map.values()].sort((x, y) => x - y)).toEqual([...model.values()].sort((x, y) => x - y));
  });
});
