import { describe, expect, it } from "vitest";
import { TransactionCache } from "../../relay/server/transaction-cache.js";

const answer = (text: string) => Buffer.from(text, "latin1");

describe("the transaction cache", () => {
  it("answers nothing for an unknown request, 'pending' while the first copy is handled, then the stored bytes", () => {
    const cache = new TransactionCache(40_000, 10);
    expect(cache.lookup("client/tx1", "digest", 0)).toBeUndefined();
    cache.markPending("client/tx1", "digest", 0);
    expect(cache.lookup("client/tx1", "digest", 1)).toBe("pending");
    cache.store("client/tx1", answer("\x01\x01\xff answer"), 2);
    expect(cache.lookup("client/tx1", "digest", 3)).toEqual(answer("\x01\x01\xff answer"));
  });

  it("calls a request with the same transaction but another digest a mismatch, not a retransmission", () => {
    const cache = new TransactionCache(40_000, 10);
    cache.markPending("client/tx1", "digest-a", 0);
    cache.store("client/tx1", answer("a"), 0);
    expect(cache.lookup("client/tx1", "digest-b", 1)).toBe("mismatch");
  });

  it("forgets on request, and stores nothing for a transaction it was not told about", () => {
    const cache = new TransactionCache(40_000, 10);
    cache.markPending("client/tx1", "d", 0);
    cache.forget("client/tx1");
    expect(cache.lookup("client/tx1", "d", 1)).toBeUndefined();
    cache.store("client/tx2", answer("x"), 1);
    expect(cache.lookup("client/tx2", "d", 1)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("calls every copy of a transaction whose result has ended 'ended', until the TTL has run from when it was made", () => {
    const cache = new TransactionCache(1_000, 10);
    cache.markPending("client/tx1", "d", 100);
    cache.forget("client/tx1"); // answered by what it made, which keeps no entry here
    cache.markEnded("client/tx1", 100, 400);
    expect(cache.lookup("client/tx1", "d", 500)).toBe("ended");
    expect(cache.lookup("client/tx1", "another digest", 500)).toBe("ended");
    expect(cache.lookup("client/tx1", "d", 1_101)).toBeUndefined();
    // Made longer ago than the TTL: no copy can still come, so nothing is kept.
    cache.markEnded("client/tx2", 100, 1_101);
    expect(cache.size).toBe(1);
    cache.prune(1_101);
    expect(cache.size).toBe(0);
  });

  it("ignores entries past the TTL, and prune drops them counting from when the answer was stored", () => {
    const cache = new TransactionCache(1_000, 10);
    cache.markPending("old", "d", 0);
    cache.store("old", answer("o"), 0);
    cache.markPending("slow", "d", 100);
    cache.markPending("late", "d", 300);
    cache.store("slow", answer("s"), 900); // answered late: its 1,000 ms run from 900
    expect(cache.lookup("old", "d", 1_001)).toBeUndefined();
    cache.prune(1_250);
    expect(cache.size).toBe(2);
    expect(cache.lookup("late", "d", 1_150)).toBe("pending");
    cache.prune(1_500);
    expect(cache.size).toBe(1);
    expect(cache.lookup("slow", "d", 1_500)).toEqual(answer("s"));
    cache.prune(1_901);
    expect(cache.size).toBe(0);
  });

  it("holds at most its bound, the oldest going first, across many more requests than that", () => {
    const cache = new TransactionCache(40_000, 100);
    for (let index = 0; index < 10_000; index++) {
      cache.markPending(`client/tx${index}`, "d", index);
      cache.store(`client/tx${index}`, answer(String(index)), index);
    }
    expect(cache.size).toBe(100);
    expect(cache.lookup("client/tx9899", "d", 10_000)).toBeUndefined();
    expect(cache.lookup("client/tx9900", "d", 10_000)).toEqual(answer("9900"));
  });
});
