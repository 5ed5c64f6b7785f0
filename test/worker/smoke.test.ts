import { describe, expect, it } from "vitest";
import { TestPeer, freshRoom } from "./peer.js";

describe("smoke", () => {
  it("joins and signals", async () => {
    const room = freshRoom();
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    expect(b.welcome.peers.map((p) => p.id)).toEqual([a.welcome.peerId]);
    const joined = await a.peer.next("peer-joined");
    expect(joined.peer.id).toBe(b.welcome.peerId);
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: { sdp: "x" } });
    expect(await b.peer.next("signal")).toEqual({ type: "signal", from: a.welcome.peerId, data: { sdp: "x" } });
  });
});
