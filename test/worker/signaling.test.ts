/**
 * The signaling contract between peers: presence, signals, broadcast, metadata, isolation.
 *
 * Delivery order under bursts is tested over real sockets in test/node/ordering.test.ts: the
 * in-process WebSockets of this pool can hand a burst to the room out of order by themselves.
 */
import { describe, expect, it } from "vitest";
import { TestPeer, freshRoom, roomOf, type Joined } from "./peer.js";

describe("joining a room", () => {
  it("welcomes each peer with an id, the peers already there and a resume token, and tells the others", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    expect(a.welcome.peers).toEqual([]);
    expect(a.welcome.peerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.welcome.resumeToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(a.welcome.resumed).toBe(false);

    const b = await TestPeer.join(room);
    expect(b.welcome.peers).toEqual([{ id: a.welcome.peerId, meta: {} }]);
    expect(await a.peer.next("peer-joined")).toEqual({ type: "peer-joined", peer: { id: b.welcome.peerId, meta: {} } });

    const c = await TestPeer.join(room);
    expect(c.welcome.peers.map((p) => p.id)).toEqual([a.welcome.peerId, b.welcome.peerId]);
    expect((await a.peer.next("peer-joined")).peer.id).toBe(c.welcome.peerId);
    expect((await b.peer.next("peer-joined")).peer.id).toBe(c.welcome.peerId);
    expect(new Set([a.welcome.peerId, b.welcome.peerId, c.welcome.peerId]).size).toBe(3);
  });
});

describe("signals", () => {
  it("carry offer, answer and candidates between three peers, each only to its target, with a from the sender cannot forge", async () => {
    const [a, b, c] = (await roomOf(3)).peers as [Joined, Joined, Joined];
    const [ida, idb, idc] = [a.welcome.peerId, b.welcome.peerId, c.welcome.peerId];

    // A negotiates with B and with C; B negotiates with C. A tries to forge "from".
    a.peer.send({ type: "signal", to: idb, from: idc, data: { sdp: { type: "offer", sdp: "v=0 a→b" } } });
    a.peer.send({ type: "signal", to: idc, data: { sdp: { type: "offer", sdp: "v=0 a→c" } } });
    expect(await b.peer.next("signal")).toEqual({ type: "signal", from: ida, data: { sdp: { type: "offer", sdp: "v=0 a→b" } } });
    expect(await c.peer.next("signal")).toEqual({ type: "signal", from: ida, data: { sdp: { type: "offer", sdp: "v=0 a→c" } } });

    b.peer.send({ type: "signal", to: ida, data: { sdp: { type: "answer", sdp: "v=0 b→a" } } });
    c.peer.send({ type: "signal", to: ida, data: { sdp: { type: "answer", sdp: "v=0 c→a" } } });
    const answers = [await a.peer.next("signal"), await a.peer.next("signal")];
    expect(answers).toContainEqual({ type: "signal", from: idb, data: { sdp: { type: "answer", sdp: "v=0 b→a" } } });
    expect(answers).toContainEqual({ type: "signal", from: idc, data: { sdp: { type: "answer", sdp: "v=0 c→a" } } });

    const candidate = { candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", sdpMid: "0", sdpMLineIndex: 0 };
    b.peer.send({ type: "signal", to: idc, data: { candidate } });
    expect(await c.peer.next("signal")).toEqual({ type: "signal", from: idb, data: { candidate } });

    // Nobody got anything meant for someone else.
    await Promise.all([a.peer.expectSilence(), b.peer.expectSilence(), c.peer.expectSilence()]);
  });

  it("pass any JSON value through untouched", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    const values = [null, 0, -1.5, "text ✓ 𝄞", true, [1, [2, { x: null }]], { nested: { deep: ["a"] } }];
    for (const data of values) {
      a.peer.send({ type: "signal", to: b.welcome.peerId, data });
      expect((await b.peer.next("signal")).data).toEqual(data);
    }
  });

  it("to an unknown peer answers peer-not-found to the sender only", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    a.peer.send({ type: "signal", to: "nobody", data: 1 });
    const error = await a.peer.next("error");
    expect(error.code).toBe("peer-not-found");
    expect(error.message).toContain("nobody");
    await b.peer.expectSilence();
    // The connection stays usable.
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: 2 });
    expect((await b.peer.next("signal")).data).toBe(2);
  });
});

describe("broadcast", () => {
  it("reaches every other peer of the room, not the sender", async () => {
    const [a, b, c] = (await roomOf(3)).peers as [Joined, Joined, Joined];
    b.peer.send({ type: "broadcast", data: { hello: "all" } });
    const expected = { type: "broadcast", from: b.welcome.peerId, data: { hello: "all" } };
    expect(await a.peer.next("broadcast")).toEqual(expected);
    expect(await c.peer.next("broadcast")).toEqual(expected);
    await b.peer.expectSilence();
  });
});

describe("metadata", () => {
  it("updates the sender's meta, tells the others, and shows in later welcomes", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    a.peer.send({ type: "meta", data: { name: "Ada", muted: false } });
    expect(await b.peer.next("peer-updated")).toEqual({
      type: "peer-updated",
      peer: { id: a.welcome.peerId, meta: { name: "Ada", muted: false } },
    });
    await a.peer.expectSilence();
    const c = await TestPeer.join(room);
    expect(c.welcome.peers).toContainEqual({ id: a.welcome.peerId, meta: { name: "Ada", muted: false } });
  });

  it("must be an object within the size limit", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    a.peer.send({ type: "meta", data: ["not", "an", "object"] });
    expect((await a.peer.next("error")).code).toBe("bad-message");
    a.peer.send({ type: "meta", data: { bio: "x".repeat(3000) } });
    const tooLarge = await a.peer.next("error");
    expect(tooLarge.code).toBe("too-large");
    expect(tooLarge.message).toContain("2048");
    await b.peer.expectSilence();
    // Nothing changed, and the connection stays.
    a.peer.send({ type: "meta", data: { bio: "short" } });
    expect((await b.peer.next("peer-updated")).peer.meta).toEqual({ bio: "short" });
  });
});

describe("presence", () => {
  it("announces an explicit leave at once and exactly once", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    b.peer.send({ type: "leave" });
    expect(await a.peer.next("peer-left")).toEqual({ type: "peer-left", peerId: b.welcome.peerId });
    expect((await b.peer.waitClosed()).code).toBe(1000);
    // The resume grace period (2 s in this suite) passes without a second announcement.
    await a.peer.expectSilence(2_500);
    const c = await TestPeer.join(room);
    expect(c.welcome.peers.map((p) => p.id)).toEqual([a.welcome.peerId]);
  });

  it("announces a closed connection once, after the resume grace period", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    b.peer.close(1001, "tab closed");
    // Within the grace period the peer is still listed; nothing is announced.
    await a.peer.expectSilence(800);
    const c = await TestPeer.join(room);
    expect(c.welcome.peers.map((p) => p.id)).toEqual([a.welcome.peerId, b.welcome.peerId]);
    expect(await a.peer.next("peer-joined")).toMatchObject({ peer: { id: c.welcome.peerId } });
    expect(await a.peer.next("peer-left", 4_000)).toEqual({ type: "peer-left", peerId: b.welcome.peerId });
    expect(await c.peer.next("peer-left")).toEqual({ type: "peer-left", peerId: b.welcome.peerId });
    await a.peer.expectSilence(1_000);
    const d = await TestPeer.join(room);
    expect(d.welcome.peers.map((p) => p.id)).toEqual([a.welcome.peerId, c.welcome.peerId]);
  });

  it("never lets two rooms see each other's traffic", async () => {
    const [one, two] = [freshRoom("one"), freshRoom("two")];
    const a1 = await TestPeer.join(one);
    const a2 = await TestPeer.join(two);
    const b1 = await TestPeer.join(one);
    expect(b1.welcome.peers.map((p) => p.id)).toEqual([a1.welcome.peerId]);
    await a1.peer.next("peer-joined");
    b1.peer.send({ type: "broadcast", data: "room one only" });
    expect((await a1.peer.next("broadcast")).data).toBe("room one only");
    // A peer id from another room is unknown here.
    a2.peer.send({ type: "signal", to: a1.welcome.peerId, data: "cross-room" });
    expect((await a2.peer.next("error")).code).toBe("peer-not-found");
    await a1.peer.expectSilence();
  });
});
