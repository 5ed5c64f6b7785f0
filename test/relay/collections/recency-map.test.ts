import { describe, expect, it } from "vitest";
import { RecencyMap } from "../../../relay/collections/recency-map.js";

const keysOf = (map: RecencyMap<string, number>) => [...map.entries()].map(([key]) => key);

describe("RecencyMap", () => {
  it("keeps entries least recently set first; setting a key again makes it the newest with its new value", () => {
    const map = new RecencyMap<string, number>();
    map.set("a", 1);
    map.set("b", 2);
    map.set("c", 3);
    expect(keysOf(map)).toEqual(["a", "b", "c"]);
    map.set("a", 10);
    expect(keysOf(map)).toEqual(["b", "c", "a"]);
    expect(map.get("a")).toBe(10);
    expect(map.size).toBe(3);
  });

  it("get and has leave the order alone; touch moves an entry to the newest, and is false for a missing key", () => {
    const map = new RecencyMap<string, number>();
    map.set("a", 1);
    map.set("b", 2);
    expect(map.get("a")).toBe(1);
    expect(map.has("a")).toBe(true);
    expect(keysOf(map)).toEqual(["a", "b"]);
    expect(map.touch("a")).toBe(true);
    expect(keysOf(map)).toEqual(["b", "a"]);
    expect(map.touch("a")).toBe(true);
    expect(keysOf(map)).toEqual(["b", "a"]);
    expect(map.touch("zz")).toBe(false);
    expect(map.get("zz")).toBeUndefined();
  });

  it("evicts the oldest entries beyond its bound, touched ones counting as new", () => {
    const map = new RecencyMap<string, number>(3);
    for (const [index, key] of ["a", "b", "c"].entries()) map.set(key, index);
    map.touch("a");
    map.set("d", 3);
    expect(keysOf(map)).toEqual(["c", "a", "d"]);
    map.set("e", 4);
    map.set("f", 5);
    expect(keysOf(map)).toEqual(["d", "e", "f"]);
    expect(map.has("a")).toBe(false);
    expect(map.size).toBe(3);
  });

  it("with a bound of 0 holds nothing", () => {
    const map = new RecencyMap<string, number>(0);
    map.set("a", 1);
    expect(map.size).toBe(0);
    expect(map.oldest()).toBeUndefined();
  });

  it("deletes from the oldest end, the middle and the newest end, keeping the rest in order", () => {
    const map = new RecencyMap<string, number>();
    for (const [index, key] of ["a", "b", "c", "d", "e"].entries()) map.set(key, index);
    expect(map.delete("c")).toBe(true);
    expect(map.delete("a")).toBe(true);
    expect(map.delete("e")).toBe(true);
    expect(map.delete("e")).toBe(false);
    expect(keysOf(map)).toEqual(["b", "d"]);
    map.set("f", 5);
    map.set("b", 1);
    expect(keysOf(map)).toEqual(["d", "f", "b"]);
    expect(map.delete("d") && map.delete("f") && map.delete("b")).toBe(true);
    expect(map.size).toBe(0);
    expect(map.oldest()).toBeUndefined();
    map.set("g", 6);
    expect(keysOf(map)).toEqual(["g"]);
  });

  it("gives and takes the oldest entry; shift on an empty map is undefined", () => {
    const map = new RecencyMap<string, number>();
    expect(map.shift()).toBeUndefined();
    map.set("a", 1);
    map.set("b", 2);
    expect(map.oldest()).toEqual(["a", 1]);
    expect(map.shift()).toEqual(["a", 1]);
    expect(map.has("a")).toBe(false);
    expect(map.shift()).toEqual(["b", 2]);
    expect(map.shift()).toBeUndefined();
    expect(map.size).toBe(0);
  });

  it("iterates oldest first, also when each entry is deleted as it is reached; values follow the same order", () => {
    const map = new RecencyMap<string, number>();
    for (const [index, key] of ["a", "b", "c"].entries()) map.set(key, index);
    expect([...map.values()]).toEqual([0, 1, 2]);
    expect([...map]).toEqual([["a", 0], ["b", 1], ["c", 2]]);
    const seen: string[] = [];
    for (const [key] of map.entries()) {
      seen.push(key);
      map.delete(key);
    }
    expect(seen).toEqual(["a", "b", "c"]);
    expect(map.size).toBe(0);
  });

  it("keeps its order through a long run of mixed operations, as a plain array model does", () => {
    const map = new RecencyMap<string, number>(50);
    let model: [string, number][] = [];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let step = 0; step < 20_000; step++) {
      const key = `k${random(80)}`;
      const operation = random(4);
      if (operation <= 1) {
        map.set(key, step);
        model = model.filter(([k]) => k !== key).concat([[key, step]]);
        if (model.length > 50) model = model.slice(model.length - 50);
      } else if (operation === 2) {
        const entry = model.find(([k]) => k === key);
        expect(map.touch(key)).toBe(entry !== undefined);
        if (entry !== undefined) model = model.filter(([k]) => k !== key).concat([entry]);
      } else {
        expect(map.delete(key)).toBe(model.some(([k]) => k === key));
        model = model.filter(([k]) => k !== key);
      }
    }
    expect([...map]).toEqual(model);
    expect(map.size).toBe(model.length);
  });

  it("refuses a bound that is not a number from 0 up", () => {
    expect(() => new RecencyMap(-1)).toThrow(RangeError);
    expect(() => new RecencyMap(Number.NaN)).toThrow(RangeError);
  });
});
