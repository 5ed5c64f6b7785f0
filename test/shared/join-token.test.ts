/**
 * Join tokens (shared/signaling/join-token.ts): what an app backend mints, the Worker accepts.
 */
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { mintJoinToken, verifyJoinToken } from "../../shared/signaling/join-token.js";

const SECRET = "unit-test-secret";
const now = () => Math.floor(Date.now() / 1000);

describe("mintJoinToken + verifyJoinToken", () => {
  it("round-trips room, sub, exp and meta", async () => {
    const token = await mintJoinToken(SECRET, { room: "r1", sub: "user-42", ttlSeconds: 60, meta: { role: "host" } });
    const result = await verifyJoinToken(token, SECRET, "r1", 1024);
    expect(result).toEqual({ ok: true, claims: { room: "r1", sub: "user-42", exp: expect.any(Number), meta: { role: "host" } } });
    if (result.ok) expect(result.claims.exp - now()).toBeGreaterThan(55);
  });

  it("refuses to mint a sub that cannot be a peer id", async () => {
    await expect(mintJoinToken(SECRET, { room: "r1", sub: "" })).rejects.toThrow(/peer id/);
    await expect(mintJoinToken(SECRET, { room: "r1", sub: "a b" })).rejects.toThrow(/peer id/);
    await expect(mintJoinToken(SECRET, { room: "r1", sub: "user:42" })).rejects.toThrow(/no ':'/);
  });

  it.each([
    ["expired", async () => mintJoinToken(SECRET, { room: "r1", sub: "u", now: now() - 100, ttlSeconds: 10 }), /expired/],
    ["another room", async () => mintJoinToken(SECRET, { room: "r2", sub: "u" }), /another room/],
    ["another secret", async () => mintJoinToken("other", { room: "r1", sub: "u" }), /signature/],
    ["not yet valid", async () => sign({ room: "r1", sub: "u", exp: now() + 60, nbf: now() + 30 }, SECRET, "HS256"), /not valid yet/],
    ["HS512", async () => sign({ room: "r1", sub: "u", exp: now() + 60 }, SECRET, "HS512"), /HS256/],
    ["no exp", async () => sign({ room: "r1", sub: "u" }, SECRET, "HS256"), /exp/],
    ["meta not an object", async () => sign({ room: "r1", sub: "u", exp: now() + 60, meta: [1] }, SECRET, "HS256"), /meta/],
    ["meta too large", async () => sign({ room: "r1", sub: "u", exp: now() + 60, meta: { x: "y".repeat(2000) } }, SECRET, "HS256"), /meta/],
    ["garbage", async () => "a.b.c", /well-formed/],
  ])("refuses a token: %s", async (_, make, reason) => {
    const result = await verifyJoinToken(await make(), SECRET, "r1", 1024);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(reason);
  });
});
