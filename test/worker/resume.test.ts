/**
 * Reconnecting: a dropped peer keeps its id and its pending signals for the grace period (2 s in
 * this suite), and a second connection of the same peer replaces the first. The resume token rides
 * in Sec-WebSocket-Protocol (`resuming()`); `?resume=` is the deprecated fallback.
 */
import { describe, expect, it } from "vitest";
import { mintJoinToken } from "../../shared/signaling/join-token.js";
import { CLOSE_CODES, SIGNALING_SUBPROTOCOL, resumeSubprotocol, tokenSubprotocol } from "../../shared/signaling/protocol.js";
import { TestPeer, freshRoom, resuming, roomOf, upgrade } from "./peer.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function roomWithTwo() {
  const { room, peers } = await roomOf(2, "resume");
  return { room, a: peers[0]!, b: peers[1]! };
}

describe("resume", () => {
  it("gives a returning peer its id back and delivers what was sent meanwhile, in order, with no leave or join seen", async () => {
    const { room, a, b } = await roomWithTwo();
    b.peer.close(4000, "network changed");
    await sleep(300);
    for (let i = 1; i <= 3; i++) {
      a.peer.send({ type: "signal", to: b.welcome.peerId, data: { candidate: i } });
      await sleep(50);
    }
    await a.peer.expectSilence(200); // queued, not refused

    const back = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    expect(back.welcome.peerId).toBe(b.welcome.peerId);
    expect(back.welcome.resumed).toBe(true);
    expect(back.welcome.peers).toEqual([{ id: a.welcome.peerId, meta: {} }]);
    expect(back.welcome.resumeToken).not.toBe(b.welcome.resumeToken);
    for (let i = 1; i <= 3; i++) {
      expect(await back.peer.next("signal")).toEqual({ type: "signal", from: a.welcome.peerId, data: { candidate: i } });
    }
    // Nothing more was queued, and the others never saw the peer leave or join.
    await back.peer.expectSilence(300);
    await a.peer.expectSilence(2_200);
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "live again" });
    expect((await back.peer.next("signal")).data).toBe("live again");
  });

  it("makes each resume token single-use", async () => {
    const { room, b } = await roomWithTwo();
    b.peer.close(4000, "drop");
    await sleep(200);
    const back = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    expect(back.welcome.resumed).toBe(true);
    const replay = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    expect(replay.welcome.resumed).toBe(false);
    expect(replay.welcome.peerId).not.toBe(b.welcome.peerId);
    // The replay joined as somebody new; the resumed connection was not replaced.
    expect(await back.peer.next("peer-joined")).toMatchObject({ peer: { id: replay.welcome.peerId } });
    await back.peer.expectSilence(200);
    expect(back.peer.closedWith).toBeNull();
  });

  it("treats a token presented after the grace period as a new peer, after the others saw the old one leave", async () => {
    const { room, a, b } = await roomWithTwo();
    b.peer.close(4000, "drop");
    expect(await a.peer.next("peer-left", 4_000)).toEqual({ type: "peer-left", peerId: b.welcome.peerId });
    const late = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    expect(late.welcome.resumed).toBe(false);
    expect(late.welcome.peerId).not.toBe(b.welcome.peerId);
    expect((await a.peer.next("peer-joined")).peer.id).toBe(late.welcome.peerId);
    // Signals to the departed peer are now refused.
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: 1 });
    expect((await a.peer.next("error")).code).toBe("peer-not-found");
  });

  it("keeps at most RESUME_QUEUE_LIMIT (64) signals for an away peer and says queue-full beyond", async () => {
    const { room, a, b } = await roomWithTwo();
    b.peer.close(4000, "drop");
    await sleep(300);
    for (let i = 0; i < 66; i++) a.peer.send({ type: "signal", to: b.welcome.peerId, data: i });
    const errors = [await a.peer.next("error"), await a.peer.next("error")];
    expect(errors.map((e) => e.code)).toEqual(["queue-full", "queue-full"]);
    await a.peer.expectSilence(200);
    const back = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    for (let i = 0; i < 64; i++) await back.peer.next("signal");
    await back.peer.expectSilence(300);
  });

  it("ignores a resume token from another room", async () => {
    const { b } = await roomWithTwo();
    const elsewhere = await TestPeer.join(freshRoom("other"), resuming(b.welcome.resumeToken));
    expect(elsewhere.welcome.resumed).toBe(false);
    expect(elsewhere.welcome.peerId).not.toBe(b.welcome.peerId);
  });
});

describe("where the resume token travels", () => {
  it("resumes with the token in Sec-WebSocket-Protocol, answering with the signaling subprotocol only", async () => {
    const { room, a, b } = await roomWithTwo();
    b.peer.close(4000, "drop");
    await sleep(200);
    const back = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    expect(back.peer.response.headers.get("Sec-WebSocket-Protocol")).toBe(SIGNALING_SUBPROTOCOL);
    expect(back.welcome).toMatchObject({ peerId: b.welcome.peerId, resumed: true });
    await a.peer.expectSilence(300);
  });

  it("resumes a token holder with both tokens as subprotocols", async () => {
    const SECRET = "resume-subprotocol-secret";
    const vars = { JOIN_SECRET: SECRET };
    const room = freshRoom("resume-token");
    const joinToken = await mintJoinToken(SECRET, { room, sub: "fay" });
    const first = await TestPeer.join(room, { vars, headers: { "Sec-WebSocket-Protocol": `${SIGNALING_SUBPROTOCOL}, ${tokenSubprotocol(joinToken)}` } });
    first.peer.close(4000, "drop");
    await sleep(200);
    const protocols = [SIGNALING_SUBPROTOCOL, tokenSubprotocol(joinToken), resumeSubprotocol(first.welcome.resumeToken)].join(", ");
    const back = await TestPeer.join(room, { vars, headers: { "Sec-WebSocket-Protocol": protocols } });
    expect(back.welcome).toMatchObject({ peerId: "fay", resumed: true });
  });

  it("still resumes with ?resume= (the deprecated fallback for older clients)", async () => {
    const { room, b } = await roomWithTwo();
    b.peer.close(4000, "drop");
    await sleep(200);
    const back = await TestPeer.join(room, { query: { resume: b.welcome.resumeToken } });
    expect(back.welcome).toMatchObject({ peerId: b.welcome.peerId, resumed: true });
  });

  it("does not let a forged resume token in the subprotocol take over a peer", async () => {
    const { room, a, b } = await roomWithTwo();
    // Well-formed (22 base64url characters) but never issued: a new peer, and b keeps its connection.
    const forged = await TestPeer.join(room, resuming("AAAAAAAAAAAAAAAAAAAAAA"));
    expect(forged.welcome.resumed).toBe(false);
    expect(forged.welcome.peerId).not.toBe(b.welcome.peerId);
    expect(forged.welcome.peerId).not.toBe(a.welcome.peerId);
    expect((await b.peer.next("peer-joined")).peer.id).toBe(forged.welcome.peerId);
    expect(b.peer.closedWith).toBeNull();
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "still b" });
    expect((await b.peer.next("signal")).data).toBe("still b");
    expect(forged.peer.frames.filter((frame) => frame.type === "signal")).toEqual([]);
  });

  it.each([
    ["too short", `${SIGNALING_SUBPROTOCOL}, ${resumeSubprotocol("abc")}`],
    ["with characters no token has", `${SIGNALING_SUBPROTOCOL}, ${resumeSubprotocol("AAAAAAAAAA!AAAAAAAAAAA")}`],
    ["offered twice", `${SIGNALING_SUBPROTOCOL}, ${resumeSubprotocol("AAAAAAAAAAAAAAAAAAAAAA")}, ${resumeSubprotocol("BBBBBBBBBBBBBBBBBBBBBB")}`],
  ])("refuses a resume subprotocol %s with 400 before any room sees it", async (_, protocols) => {
    const response = await upgrade(freshRoom("resume-bad"), { headers: { "Sec-WebSocket-Protocol": protocols } });
    expect(response.status).toBe(400);
    expect(response.webSocket).toBeNull();
    const error = ((await response.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("bad-resume-token");
    expect(error.message).toMatch(/resumeToken of your last welcome/);
  });

  it("refuses a resume token in both the subprotocol and the query", async () => {
    const response = await upgrade(freshRoom("resume-both"), {
      ...resuming("AAAAAAAAAAAAAAAAAAAAAA"),
      query: { resume: "BBBBBBBBBBBBBBBBBBBBBB" },
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("bad-resume-token");
  });
});

describe("a second connection of the same peer", () => {
  it("replaces the first when it resumes while the first is still open", async () => {
    const { room, a, b } = await roomWithTwo();
    const second = await TestPeer.join(room, resuming(b.welcome.resumeToken));
    expect(second.welcome.peerId).toBe(b.welcome.peerId);
    expect(second.welcome.resumed).toBe(true);
    const closed = await b.peer.waitClosed();
    expect(closed.code).toBe(CLOSE_CODES.replaced);
    // One frame at a time: under load the test pool's Durable Object wrapper (an import through its
    // runner object before each handler) can swap two events that arrive together; workerd alone keeps them in order.
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "to the new one" });
    expect((await second.peer.next("signal")).data).toBe("to the new one");
    a.peer.send({ type: "broadcast", data: "to all" });
    expect((await second.peer.next("broadcast")).data).toBe("to all");
    expect(b.peer.frames.filter((f) => f.type === "signal" || f.type === "broadcast")).toEqual([]);
    await a.peer.expectSilence(2_200);
  });

  it("replaces the first when the same token subject joins again", async () => {
    const SECRET = "replacement-secret";
    const vars = { JOIN_SECRET: SECRET };
    const room = freshRoom("dup");
    const first = await TestPeer.join(room, { vars, query: { token: await mintJoinToken(SECRET, { room, sub: "dana" }) } });
    const other = await TestPeer.join(room, { vars, query: { token: await mintJoinToken(SECRET, { room, sub: "eli" }) } });
    await first.peer.next("peer-joined");
    const second = await TestPeer.join(room, { vars, query: { token: await mintJoinToken(SECRET, { room, sub: "dana" }) } });
    expect(second.welcome).toMatchObject({ peerId: "dana", resumed: true, peers: [{ id: "eli", meta: {} }] });
    expect((await first.peer.waitClosed()).code).toBe(CLOSE_CODES.replaced);
    other.peer.send({ type: "signal", to: "dana", data: "hi" });
    expect(await second.peer.next("signal")).toEqual({ type: "signal", from: "eli", data: "hi" });
    // The replaced connection's close is not a departure.
    await other.peer.expectSilence(2_200);
  });
});
