/**
 * The production guard: a Worker with a relay secret or API keys but no JOIN_SECRET looks like a
 * production deployment, and would let anyone into any room (and, where AUTH_MODE=open, to the
 * relay). It refuses open rooms there unless AUTH_MODE=open says they are wanted.
 */
import { describe, expect, it } from "vitest";
import { mintJoinToken } from "../../shared/signaling/join-token.js";
import { CLOSE_CODES, SIGNALING_SUBPROTOCOL } from "../../shared/signaling/protocol.js";
import type { Env } from "../../worker/env.js";
import { TestPeer, freshRoom, upgrade } from "./peer.js";

const relay: Partial<Env> = { TURN_SECRETS: "relay-secret", TURN_URLS: "turn:relay.example.com:3478" };

describe("open rooms on a Worker that looks like production", () => {
  it.each([
    ["TURN_SECRETS", relay],
    ["API_KEYS", { API_KEYS: "backend-key" }],
  ])("are refused when %s is set without JOIN_SECRET: an error frame says what to set, then close 4010", async (_, vars) => {
    const peer = await TestPeer.connect(freshRoom("guard"), { vars, headers: { "Sec-WebSocket-Protocol": SIGNALING_SUBPROTOCOL } });
    // Accepted only to say why (a browser cannot read an HTTP refusal of a WebSocket), with the subprotocol echoed.
    expect(peer.response.headers.get("Sec-WebSocket-Protocol")).toBe(SIGNALING_SUBPROTOCOL);
    const error = await peer.next("error");
    expect(error.code).toBe("auth-not-configured");
    expect(error.message).toMatch(/JOIN_SECRET.*AUTH_MODE=open/);
    const closed = await peer.waitClosed();
    expect(closed.code).toBe(CLOSE_CODES.authNotConfigured);
    expect(closed.reason).toMatch(/JOIN_SECRET/);
    expect(peer.frames.map((frame) => frame.type)).toEqual(["error"]);
  });

  it("lets nobody into the room meanwhile: a refused join is not a member", async () => {
    const room = freshRoom("guard-empty");
    const refused = await TestPeer.connect(room, { vars: relay });
    await refused.waitClosed();
    const { welcome } = await TestPeer.join(room, { vars: { ...relay, AUTH_MODE: "open" } });
    expect(welcome.peers).toEqual([]);
  });

  it("are allowed when AUTH_MODE=open says so explicitly", async () => {
    const { welcome } = await TestPeer.join(freshRoom("guard-open"), { vars: { ...relay, API_KEYS: "backend-key", AUTH_MODE: "open" } });
    expect(welcome.peerId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("are allowed on a Worker with nothing configured (local development)", async () => {
    const { welcome } = await TestPeer.join(freshRoom("guard-dev"));
    expect(welcome.peerId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("do not concern a Worker with JOIN_SECRET: rooms need a token there, as before", async () => {
    const room = freshRoom("guard-token");
    const vars = { ...relay, JOIN_SECRET: "guard-join-secret" };
    expect((await upgrade(room, { vars })).status).toBe(401);
    const token = await mintJoinToken("guard-join-secret", { room, sub: "gail" });
    const { welcome } = await TestPeer.join(room, { vars, query: { token } });
    expect(welcome.peerId).toBe("gail");
  });

  it("refuses a misspelt AUTH_MODE as a configuration error, not as open", async () => {
    const response = await upgrade(freshRoom("guard-typo"), { vars: { ...relay, AUTH_MODE: "opne" } });
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "bad-config", message: expect.stringContaining("AUTH_MODE") });
  });
});
