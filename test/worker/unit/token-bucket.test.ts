import { describe, expect, it } from "vitest";
import { fullBucket, takeToken } from "../../../worker/room/token-bucket.js";

describe("token bucket", () => {
  it("allows a burst of its capacity, then refuses until time refills it", () => {
    let bucket = fullBucket(3, 0);
    const results = [];
    for (let i = 0; i < 4; i++) {
      const taken = takeToken(bucket, 0, 3, 2);
      results.push(taken.allowed);
      bucket = taken.bucket;
    }
    expect(results).toEqual([true, true, true, false]);
    expect(takeToken(bucket, 400, 3, 2).allowed).toBe(false); // 0.8 token
    expect(takeToken(bucket, 500, 3, 2).allowed).toBe(true); // 1 token
  });

  it("never holds more than its capacity, however long it was idle", () => {
    let bucket = fullBucket(2, 0);
    bucket = takeToken(bucket, 0, 2, 1).bucket;
    bucket = takeToken(bucket, 1_000_000, 2, 1).bucket;
    expect(bucket.tokens).toBe(1);
  });

  it("ignores a clock that goes backwards", () => {
    const bucket = { tokens: 0, at: 1000 };
    expect(takeToken(bucket, 500, 5, 10)).toEqual({ allowed: false, bucket: { tokens: 0, at: 500 } });
  });
});
