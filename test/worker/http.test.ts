/**
 * The HTTP edge of the Worker: what is refused before any socket is accepted, always as JSON.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SIGNALING_SUBPROTOCOL, tokenSubprotocol } from "../../shared/signaling/protocol.js";
import { TestPeer, freshRoom, upgrade } from "./peer.js";

async function errorOf(response: Response) {
  expect(response.headers.get("Content-Type")).toMatch(/^application\/json/);
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

describe("GET /v1/rooms/:room", () => {
  it.each(["a".repeat(65), "has space", "sl%2Fash", "emoji-%F0%9F%98%80", "semi;colon", "%00"])(
    "refuses the room name %j with 400",
    async (name) => {
      const response = await upgrade(name);
      expect(response.status).toBe(400);
      expect(await errorOf(response)).toMatchObject({ code: "bad-room", message: expect.stringContaining("1-64") });
    },
  );

  it.each(["a", "A-z_0.9", "x".repeat(64)])("accepts the room name %j", async (name) => {
    const { peer, welcome } = await TestPeer.join(name);
    expect(welcome.type).toBe("welcome");
    peer.send({ type: "leave" });
    await peer.waitClosed();
  });

  it("answers 426 with a JSON body without the upgrade header", async () => {
    const response = await exports.default.fetch(`http://relaykit.test/v1/rooms/${freshRoom()}`);
    expect(response.status).toBe(426);
    expect(await errorOf(response)).toMatchObject({ code: "upgrade-required" });
  });

  it("checks the room name before the upgrade", async () => {
    const response = await exports.default.fetch("http://relaykit.test/v1/rooms/bad%20name");
    expect(response.status).toBe(400);
  });

  it("answers unknown paths with a JSON 404", async () => {
    const response = await exports.default.fetch("http://relaykit.test/v2/rooms/x");
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toMatchObject({ code: "not-found" });
  });

  it("echoes the signaling subprotocol when offered", async () => {
    const response = await upgrade(freshRoom(), { headers: { "Sec-WebSocket-Protocol": `${SIGNALING_SUBPROTOCOL}` } });
    expect(response.status).toBe(101);
    expect(response.headers.get("Sec-WebSocket-Protocol")).toBe(SIGNALING_SUBPROTOCOL);
    response.webSocket?.accept();
    response.webSocket?.close(1000);
  });

  it("refuses subprotocols that do not include the signaling one, which a browser would fail on", async () => {
    const response = await upgrade(freshRoom(), { headers: { "Sec-WebSocket-Protocol": tokenSubprotocol("abc") } });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "bad-subprotocol", message: expect.stringContaining(SIGNALING_SUBPROTOCOL) });
  });

  it("names the variable when the configuration is bad", async () => {
    const response = await upgrade(freshRoom(), { vars: { ROOM_CAPACITY: "lots" } });
    expect(response.status).toBe(500);
    expect(await errorOf(response)).toMatchObject({ code: "bad-config", message: expect.stringContaining("ROOM_CAPACITY") });
  });
});
