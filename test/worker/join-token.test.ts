/**
 * Join authorization: with JOIN_SECRET set, only a valid HS256 token for this room gets a socket,
 * and its `sub` becomes the peer id.
 */
import { describe, expect, it } from "vitest";
import { mintJoinToken } from "../../shared/signaling/join-token.js";
import { SIGNALING_SUBPROTOCOL, tokenSubprotocol } from "../../shared/signaling/protocol.js";
import { TestPeer, freshRoom, upgrade } from "./peer.js";

const SECRET = "test-join-secret-0123456789abcdef";
const vars = { JOIN_SECRET: SECRET };
const now = () => Math.floor(Date.now() / 1000);

async function refusal(room: string, query: Record<string, string>) {
  const response = await upgrade(room, { vars, query });
  expect(response.webSocket).toBeNull();
  return { status: response.status, body: (await response.json()) as { error: { code: string; message: string } } };
}

describe("join tokens", () => {
  it("admits a valid token; sub becomes the peer id and meta the initial metadata", async () => {
    const room = freshRoom("auth");
    const token = await mintJoinToken(SECRET, { room, sub: "alice", meta: { name: "Alice" } });
    const alice = await TestPeer.join(room, { vars, query: { token } });
    expect(alice.welcome.peerId).toBe("alice");
    const bobToken = await mintJoinToken(SECRET, { room, sub: "bob" });
    const bob = await TestPeer.join(room, { vars, query: { token: bobToken } });
    expect(bob.welcome.peers).toEqual([{ id: "alice", meta: { name: "Alice" } }]);
    expect(await alice.peer.next("peer-joined")).toEqual({ type: "peer-joined", peer: { id: "bob", meta: {} } });
  });

  it("accepts the token in Sec-WebSocket-Protocol, for browsers", async () => {
    const room = freshRoom("auth");
    const token = await mintJoinToken(SECRET, { room, sub: "carol" });
    const response = await upgrade(room, {
      vars,
      headers: { "Sec-WebSocket-Protocol": `${SIGNALING_SUBPROTOCOL}, ${tokenSubprotocol(token)}` },
    });
    expect(response.status).toBe(101);
    expect(response.headers.get("Sec-WebSocket-Protocol")).toBe(SIGNALING_SUBPROTOCOL);
    response.webSocket!.accept();
    const welcome = await new Promise<{ peerId: string }>((resolve) =>
      response.webSocket!.addEventListener("message", (event) => resolve(JSON.parse(event.data as string))),
    );
    expect(welcome.peerId).toBe("carol");
    response.webSocket!.close(1000);
  });

  it("refuses a missing token with 401", async () => {
    const { status, body } = await refusal(freshRoom("auth"), {});
    expect(status).toBe(401);
    expect(body.error.code).toBe("unauthorized");
    expect(body.error.message).toContain("token");
  });

  it("refuses an expired token", async () => {
    const room = freshRoom("auth");
    const token = await mintJoinToken(SECRET, { room, sub: "late", now: now() - 600, ttlSeconds: 60 });
    const { status, body } = await refusal(room, { token });
    expect(status).toBe(401);
    expect(body.error.message).toMatch(/expired/);
  });

  it("refuses a token for another room", async () => {
    const token = await mintJoinToken(SECRET, { room: "elsewhere", sub: "mallory" });
    const { status, body } = await refusal(freshRoom("auth"), { token });
    expect(status).toBe(401);
    expect(body.error.message).toMatch(/another room/);
  });

  it("refuses a token signed with another secret", async () => {
    const room = freshRoom("auth");
    const token = await mintJoinToken("not-the-secret", { room, sub: "mallory" });
    const { status, body } = await refusal(room, { token });
    expect(status).toBe(401);
    expect(body.error.message).toMatch(/signature/);
  });

  it("refuses a token whose payload was altered after signing", async () => {
    const room = freshRoom("auth");
    const token = await mintJoinToken(SECRET, { room, sub: "mallory" });
    const [header, , signature] = token.split(".");
    const forgedPayload = btoa(JSON.stringify({ room, sub: "admin", exp: now() + 600 })).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const { status } = await refusal(room, { token: `${header}.${forgedPayload}.${signature}` });
    expect(status).toBe(401);
  });

  it("refuses an unsigned (alg none) token and garbage", async () => {
    const room = freshRoom("auth");
    const b64 = (value: object) => btoa(JSON.stringify(value)).replace(/=+$/, "");
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64({ room, sub: "eve", exp: now() + 600 })}.`;
    expect((await refusal(room, { token: none })).status).toBe(401);
    expect((await refusal(room, { token: "not-a-jwt" })).status).toBe(401);
  });

  it("refuses a token without exp, or with a sub that cannot be a peer id", async () => {
    const room = freshRoom("auth");
    const { sign } = await import("hono/jwt");
    const noExp = await sign({ room, sub: "eve" }, SECRET, "HS256");
    expect((await refusal(room, { token: noExp })).body.error.message).toMatch(/exp/);
    const badSub = await sign({ room, sub: "has space", exp: now() + 60 }, SECRET, "HS256");
    expect((await refusal(room, { token: badSub })).body.error.message).toMatch(/sub/);
  });

  it("ignores tokens in an open room (no JOIN_SECRET) and picks a random id", async () => {
    const room = freshRoom("open");
    const token = await mintJoinToken(SECRET, { room, sub: "alice" });
    const { welcome } = await TestPeer.join(room, { query: { token } });
    expect(welcome.peerId).not.toBe("alice");
  });
});
