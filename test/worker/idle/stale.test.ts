/**
 * The sweep, with PEER_IDLE_TIMEOUT_SECONDS=1.5 and RESUME_GRACE_SECONDS=1 (see vitest.config.ts):
 * a silent connection is closed as stale and, once its grace period is over, announced as left.
 */
import { describe, expect, it } from "vitest";
import { CLOSE_CODES, PING_FRAME } from "../../../shared/signaling/protocol.js";
import { TestPeer, freshRoom, resuming } from "../peer.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("stale connections", () => {
  it("closes a peer silent past the idle timeout and announces it left once, after the grace period", async () => {
    const room = freshRoom("stale");
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    expect(b.welcome.idleTimeoutMs).toBe(1500);
    await a.peer.next("peer-joined");
    // A keeps pinging (answered by the runtime itself); B says nothing.
    const pinger = setInterval(() => a.peer.send(PING_FRAME), 400);
    try {
      const closed = await b.peer.waitClosed(4_000);
      expect(closed.code).toBe(CLOSE_CODES.stale);
      expect(await a.peer.next("peer-left", 4_000)).toEqual({ type: "peer-left", peerId: b.welcome.peerId });
      await sleep(2_000);
      expect(a.peer.frames.filter((f) => f.type === "peer-left")).toHaveLength(1);
      expect(a.peer.closedWith).toBeNull();
    } finally {
      clearInterval(pinger);
    }
  });

  it("keeps a peer that sends frames other than ping", async () => {
    const room = freshRoom("chatty");
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    for (let i = 0; i < 8; i++) {
      await sleep(400);
      a.peer.send({ type: "broadcast", data: i });
      b.peer.send({ type: "broadcast", data: i });
    }
    expect(a.peer.closedWith).toBeNull();
    expect(b.peer.closedWith).toBeNull();
  });

  it("lets a stale peer resume within the grace period", async () => {
    const room = freshRoom("stale-resume");
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    const pinger = setInterval(() => a.peer.send(PING_FRAME), 400);
    try {
      expect((await b.peer.waitClosed(4_000)).code).toBe(CLOSE_CODES.stale);
      const back = await TestPeer.join(room, resuming(b.welcome.resumeToken));
      expect(back.welcome).toMatchObject({ peerId: b.welcome.peerId, resumed: true });
      back.peer.send(PING_FRAME);
      await sleep(1_200);
      expect(a.peer.frames.filter((f) => f.type === "peer-left")).toEqual([]);
    } finally {
      clearInterval(pinger);
    }
  });
});
