/**
 * The client library's pure parts: reconnect delays, when to refresh credentials, reading the
 * server's frames and the mesh's signals, roles in a pair, and URLs.
 */
import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "../../../shared/client/backoff.js";
import { normalizeServerUrl, parseIceServersResponse, refreshDelayMs } from "../../../shared/client/ice-servers.js";
import { isPolite, readMeshSignal, roomSocketUrl, roomSubprotocols } from "../../../shared/client/index.js";
import { remoteUfrags } from "../../../shared/client/mesh.js";
import { parseServerFrame } from "../../../shared/signaling/parse-server-frame.js";

describe("backoffDelayMs", () => {
  it("doubles its bound from 250 ms up to 10 s, and waits between half the bound and the bound", () => {
    const bounds = [0, 1, 2, 3, 4, 5, 6, 10, 40].map((attempt) => backoffDelayMs(attempt, {}, 0.999999));
    expect(bounds).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    expect(backoffDelayMs(0, {}, 0)).toBe(125);
    expect(backoffDelayMs(3, {}, 0)).toBe(1000);
    expect(backoffDelayMs(2, { initialDelayMs: 100, maxDelayMs: 300 }, 0.999999)).toBe(300);
  });

  it("stays within its bounds for any random value, even out-of-range ones", () => {
    for (const random of [-1, 0, 0.3, 0.7, 1, 2]) {
      const delay = backoffDelayMs(4, {}, random);
      expect(delay).toBeGreaterThanOrEqual(2000);
      expect(delay).toBeLessThanOrEqual(4000);
    }
  });
});

describe("refreshDelayMs", () => {
  const now = Date.parse("2026-11-22T00:00:00Z");
  it("refreshes a day-long credential five minutes before it expires", () => {
    expect(refreshDelayMs("2026-11-23T00:00:00Z", now)).toBe(86_400_000 - 300_000);
  });
  it("refreshes a short credential at four fifths of its remaining life", () => {
    expect(refreshDelayMs("2026-11-22T00:00:20Z", now)).toBe(16_000);
    expect(refreshDelayMs("2026-11-22T00:10:00Z", now)).toBe(480_000);
  });
  it("never waits less than a second, even for a credential already expired or a bad date", () => {
    expect(refreshDelayMs("2026-11-21T00:00:00Z", now)).toBe(1_000);
    expect(refreshDelayMs("not a date", now)).toBe(1_000);
  });
});

describe("parseIceServersResponse", () => {
  it("accepts the Worker's shape and refuses others", () => {
    const good = { iceServers: [{ urls: ["stun:a:3478"] }, { urls: "turn:a:3478", username: "1:u", credential: "x" }], ttl: 60, expiresAt: "2026-11-22T00:01:00.000Z" };
    expect(parseIceServersResponse(JSON.stringify(good))).toEqual(good);
    expect(parseIceServersResponse("<html>")).toBeNull();
    expect(parseIceServersResponse(JSON.stringify({ ...good, expiresAt: "soon" }))).toBeNull();
    expect(parseIceServersResponse(JSON.stringify({ ...good, iceServers: [{ urls: 5 }] }))).toBeNull();
    expect(parseIceServersResponse(JSON.stringify({ ...good, iceServers: [{ urls: "turn:a", username: 1 }] }))).toBeNull();
  });
});

describe("parseServerFrame", () => {
  const welcome = { type: "welcome", peerId: "a", peers: [{ id: "b", meta: {} }], resumeToken: "t", resumed: false, idleTimeoutMs: 60_000, resumeGraceMs: 30_000 };
  it("reads every frame the room sends", () => {
    const frames = [
      welcome,
      { ...welcome, iceServers: [{ urls: "stun:x" }], expiresAt: "2026-11-22T00:00:00Z" },
      { ...welcome, iceServersWithheld: { code: "rate-limited", message: "later", retryAfterMs: 10_000 } },
      { ...welcome, iceServersWithheld: { code: "no-relay-available", message: "later", retryAfterMs: 5_000 } },
      { type: "peer-joined", peer: { id: "c", meta: { name: "C" } } },
      { type: "peer-updated", peer: { id: "c", meta: {} } },
      { type: "peer-left", peerId: "c" },
      { type: "signal", from: "b", data: { sdp: "…" } },
      { type: "signal", from: "b", data: null },
      { type: "broadcast", from: "b", data: [1, 2] },
      { type: "pong" },
      { type: "ice-servers", iceServers: [{ urls: "turn:r2:3478", username: "1:room/a", credential: "c" }], expiresAt: "2026-11-22T00:00:00Z", reason: "relay-draining" },
      { type: "ice-servers", iceServers: [], expiresAt: "2026-11-22T00:00:00Z", reason: "a-reason-from-a-newer-worker" },
      { type: "error", code: "peer-not-found", message: "no such peer" },
    ];
    for (const frame of frames) expect(parseServerFrame(JSON.stringify(frame))).toEqual(frame);
  });

  it("keeps a welcome whose iceServersWithheld it does not understand, without that field", () => {
    for (const withheld of [{ code: "from-the-future", message: "m", retryAfterMs: 1 }, { code: "rate-limited", message: "m", retryAfterMs: -1 }, { code: "rate-limited", message: "m" }, "soon"]) {
      expect(parseServerFrame(JSON.stringify({ ...welcome, iceServersWithheld: withheld })), JSON.stringify(withheld)).toEqual(welcome);
    }
  });

  it("returns null for garbage, unknown types and frames missing a field, without throwing", () => {
    for (const text of ["", "{", "null", "[]", '"welcome"', '{"type":"from-the-future"}', '{"type":"signal","data":1}', '{"type":"signal","from":"b"}', '{"type":"peer-joined","peer":{"id":"x"}}', '{"type":"error","code":"made-up","message":"m"}', '{"type":"ice-servers","iceServers":{},"expiresAt":"x","reason":"r"}', '{"type":"ice-servers","iceServers":[],"reason":"r"}', '{"type":"ice-servers","iceServers":[],"expiresAt":"x"}', JSON.stringify({ ...welcome, peers: [{ id: 1 }] }), JSON.stringify({ ...welcome, resumed: "no" })]) {
      expect(parseServerFrame(text), text).toBeNull();
    }
  });
});

describe("readMeshSignal", () => {
  it("reads descriptions and candidates, and ignores the app's own signals", () => {
    expect(readMeshSignal({ mesh: { session: "s", description: { type: "offer", sdp: "v=0" } } })).toEqual({ session: "s", description: { type: "offer", sdp: "v=0" } });
    expect(readMeshSignal({ mesh: { session: "s", candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" } } })).toEqual({
      session: "s",
      candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" },
    });
    for (const data of [null, "text", [1], { chat: "hi" }, { mesh: "x" }, { mesh: { description: { type: "offer", sdp: "v=0" } } }, { mesh: { session: "s" } }, { mesh: { session: "s", description: { type: "rollback", sdp: "" } } }, { mesh: { session: "s", candidate: { candidate: 1 } } }]) {
      expect(readMeshSignal(data as never), JSON.stringify(data)).toBeNull();
    }
  });
});

describe("remoteUfrags", () => {
  it("lists the ICE username fragments of a description, so candidates of an abandoned generation can be told apart", () => {
    const sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:efgh\r\n";
    expect(remoteUfrags(sdp)).toEqual(new Set(["abcd", "efgh"]));
    expect(remoteUfrags("v=0\r\n")).toEqual(new Set());
  });
});

describe("roles and URLs", () => {
  it("makes exactly one side of every pair polite", () => {
    for (const [a, b] of [["alice", "bob"], ["b", "a"], ["0f", "f0"]] as const) {
      expect(isPolite(a, b)).not.toBe(isPolite(b, a));
    }
  });

  it("derives the room's WebSocket URL from the Worker's origin", () => {
    expect(roomSocketUrl("https://kit.example.com/", "room-1")).toBe("wss://kit.example.com/v1/rooms/room-1");
    expect(roomSocketUrl("http://127.0.0.1:8787", "r")).toBe("ws://127.0.0.1:8787/v1/rooms/r");
    expect(roomSocketUrl("https://kit.example.com/base", "r")).toBe("wss://kit.example.com/base/v1/rooms/r");
  });

  it("offers the join and resume tokens as subprotocols, never in the URL", () => {
    expect(roomSubprotocols(undefined, undefined)).toEqual(["relaykit.v1"]);
    expect(roomSubprotocols("h.p.s", undefined)).toEqual(["relaykit.v1", "token.h.p.s"]);
    expect(roomSubprotocols(undefined, "AAAAAAAAAAAAAAAAAAAAAA")).toEqual(["relaykit.v1", "resume.AAAAAAAAAAAAAAAAAAAAAA"]);
    expect(roomSubprotocols("h.p.s", "AAAAAAAAAAAAAAAAAAAAAA")).toEqual(["relaykit.v1", "token.h.p.s", "resume.AAAAAAAAAAAAAAAAAAAAAA"]);
  });

  it("refuses a server that is not an http(s) URL, saying what it wants", () => {
    expect(() => normalizeServerUrl("ws://x")).toThrow(/http: or https:/);
    expect(() => normalizeServerUrl("kit.example.com")).toThrow(/the Worker's http\(s\) origin/);
  });
});
