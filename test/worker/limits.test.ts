/**
 * What the room refuses: malformed frames, oversized frames, floods, and a full room. Every refusal
 * is an error frame with a stable code; only abuse closes the connection.
 */
import { describe, expect, it } from "vitest";
import { CLOSE_CODES } from "../../shared/signaling/protocol.js";
import { TestPeer, freshRoom, roomOf } from "./peer.js";

async function pair() {
  const { room, peers } = await roomOf(2, "limits");
  return { room, a: peers[0]!, b: peers[1]! };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("malformed frames", () => {
  it.each([
    ["not JSON", "hello", /JSON/],
    ["a JSON array", "[1,2]", /object/],
    ["a JSON number", "42", /object/],
    ["no type", '{"to":"x"}', /"type"/],
    ["an unknown type", '{"type":"dance"}', /unknown frame type "dance"/],
    ["a signal without to", '{"type":"signal","data":1}', /"to"/],
    ["a signal with an empty to", '{"type":"signal","to":"","data":1}', /"to"/],
    ["a signal without data", '{"type":"signal","to":"x"}', /"data"/],
    ["a broadcast without data", '{"type":"broadcast"}', /"data"/],
    ["a meta without data", '{"type":"meta"}', /object/],
  ])("%s gets bad-message and the connection stays", async (_, text, message) => {
    const { a, b } = await pair();
    a.peer.send(text);
    const error = await a.peer.next("error");
    expect(error.code).toBe("bad-message");
    expect(error.message).toMatch(message);
    a.peer.send({ type: "broadcast", data: "still here" });
    expect((await b.peer.next("broadcast")).data).toBe("still here");
  });

  it("binary frames get bad-message", async () => {
    const { a } = await pair();
    a.peer.ws.send(new Uint8Array([1, 2, 3]));
    expect(await a.peer.next("error")).toMatchObject({ code: "bad-message", message: expect.stringMatching(/binary/) });
  });

  it("a flood of bad frames closes the connection with 1008, and the others carry on", async () => {
    const { a, b } = await pair();
    for (let i = 0; i < 10; i++) a.peer.send("garbage");
    for (let i = 0; i < 10; i++) expect((await a.peer.next("error")).code).toBe("bad-message");
    expect(a.peer.closedWith).toBeNull();
    for (let i = 0; i < 30; i++) a.peer.send("garbage");
    const closed = await a.peer.waitClosed();
    expect(closed.code).toBe(CLOSE_CODES.policyViolation);
    // B is undisturbed until A's grace period ends (2 s here), then sees A leave once.
    expect(await b.peer.next("peer-left", 4_000)).toEqual({ type: "peer-left", peerId: a.welcome.peerId });
  });
});

describe("frame size", () => {
  it("delivers a frame just under the 64 KiB limit", async () => {
    const { a, b } = await pair();
    const data = "x".repeat(64 * 1024 - 200);
    a.peer.send({ type: "signal", to: b.welcome.peerId, data });
    expect((await b.peer.next("signal")).data).toBe(data);
  });

  it("closes the connection with 1009 on a frame over the limit, saying why", async () => {
    const { a, b } = await pair();
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "x".repeat(64 * 1024) });
    const error = await a.peer.next("error");
    expect(error.code).toBe("too-large");
    expect(error.message).toContain("65536");
    expect((await a.peer.waitClosed()).code).toBe(CLOSE_CODES.tooLarge);
    expect(b.peer.frames.filter((f) => f.type === "signal")).toEqual([]);
  });

  it("counts bytes, not characters", async () => {
    const { a } = await pair();
    // 22,000 three-byte characters: under the limit in characters, over it in bytes.
    a.peer.send({ type: "broadcast", data: "€".repeat(22_000) });
    expect((await a.peer.next("error")).code).toBe("too-large");
    expect((await a.peer.waitClosed()).code).toBe(CLOSE_CODES.tooLarge);
  });
});

describe("rate limit", () => {
  it("lets a 50-frame burst of candidates and then 20 frames per second through", async () => {
    const { a, b } = await pair();
    for (let i = 0; i < 50; i++) a.peer.send({ type: "broadcast", data: i });
    for (let i = 0; i < 60; i++) {
      await sleep(50);
      a.peer.send({ type: "broadcast", data: 50 + i });
    }
    const received = [];
    for (let i = 0; i < 110; i++) received.push((await b.peer.next("broadcast")).data);
    expect(new Set(received).size).toBe(110);
    expect(a.peer.frames.filter((f) => f.type === "error")).toEqual([]);
  });

  it("answers rate-limited beyond the burst, drops those frames, and recovers", async () => {
    const { a, b } = await pair();
    // 18 over the burst of 100: at least 5 refused even if the room takes half a second to read them
    // all (25 frames/s refill meanwhile), and fewer than the 20 strikes that would close the socket.
    const sent = 118;
    for (let i = 0; i < sent; i++) a.peer.send({ type: "broadcast", data: i });
    const errors = [];
    for (let i = 0; i < 5; i++) errors.push(await a.peer.next("error"));
    expect(errors.every((e) => e.code === "rate-limited")).toBe(true);
    await sleep(1_000);
    expect(a.peer.closedWith).toBeNull();
    a.peer.frames.splice(0);
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "after the pause" });
    // The room delivers in order, so once the signal is in, every broadcast it let through is too
    // (a loaded machine can take well over a second to deliver them all).
    const deadline = Date.now() + 10_000;
    while (b.peer.frames.at(-1)?.type !== "signal" && Date.now() < deadline) await sleep(20);
    expect(b.peer.frames.at(-1)).toEqual({ type: "signal", from: a.welcome.peerId, data: "after the pause" });
    const delivered = b.peer.frames.filter((f) => f.type === "broadcast").length;
    expect(delivered).toBeGreaterThanOrEqual(100);
    expect(delivered).toBeLessThan(sent);
  });

  it("closes a connection that keeps flooding with 1008", async () => {
    const { a } = await pair();
    for (let i = 0; i < 200; i++) a.peer.send({ type: "broadcast", data: i });
    expect((await a.peer.waitClosed()).code).toBe(CLOSE_CODES.policyViolation);
  });
});

describe("room capacity", () => {
  it("refuses the 17th peer with room-full and a close code, disturbing nobody", async () => {
    const room = freshRoom("full");
    const peers = [];
    for (let i = 0; i < 16; i++) peers.push(await TestPeer.join(room));
    const first = peers[0]!;
    for (let i = 0; i < 15; i++) await first.peer.next("peer-joined");

    const extra = await TestPeer.connect(room);
    const error = await extra.next("error");
    expect(error.code).toBe("room-full");
    expect(error.message).toContain("16");
    expect((await extra.waitClosed()).code).toBe(CLOSE_CODES.roomFull);
    await first.peer.expectSilence(500);
    expect(peers.every((p) => p.peer.closedWith === null)).toBe(true);

    // A place frees up when someone leaves.
    peers[15]!.peer.send({ type: "leave" });
    await first.peer.next("peer-left");
    const late = await TestPeer.join(room);
    expect(late.welcome.peers).toHaveLength(15);
  });
});
