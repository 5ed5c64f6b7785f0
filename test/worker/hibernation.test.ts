import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PING_FRAME } from "../../shared/signaling/protocol.js";
import { TestPeer, freshRoom } from "./peer.js";

const EVICTED = Symbol("marked before the wait");

describe("hibernation", () => {
  it("carries on the conversation after the room's object is evicted", async () => {
    const room = freshRoom("evict");
    const a = await TestPeer.join(room);
    const b = await TestPeer.join(room);
    await a.peer.next("peer-joined");
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    const marked = (instance: unknown) => (instance as Record<symbol, boolean>)[EVICTED] === true;
    await runInDurableObject(stub, (instance) => {
      (instance as unknown as Record<symbol, boolean>)[EVICTED] = true;
    });
    // Control: while the room is busy the instance, and so the mark, stays.
    a.peer.send({ type: "broadcast", data: "before" });
    expect((await b.peer.next("broadcast")).data).toBe("before");
    expect(await runInDurableObject(stub, marked)).toBe(true);

    // Keep both peers alive with pings the runtime answers itself, for longer than the ~10 s idle eviction.
    for (let i = 0; i < 13; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      a.peer.send(PING_FRAME);
      b.peer.send(PING_FRAME);
      expect(await a.peer.next("pong")).toEqual({ type: "pong" });
      expect(await b.peer.next("pong")).toEqual({ type: "pong" });
    }
    // A fresh instance: the old one, and every field it had, is gone.
    expect(await runInDurableObject(stub, marked)).toBe(false);

    // Roster, peer ids and per-connection state came back from storage and attachments.
    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "after eviction" });
    expect(await b.peer.next("signal")).toEqual({ type: "signal", from: a.welcome.peerId, data: "after eviction" });
    b.peer.send({ type: "meta", data: { name: "Bea" } });
    expect(await a.peer.next("peer-updated")).toEqual({ type: "peer-updated", peer: { id: b.welcome.peerId, meta: { name: "Bea" } } });
    const c = await TestPeer.join(room);
    expect(c.welcome.peers).toEqual([
      { id: a.welcome.peerId, meta: {} },
      { id: b.welcome.peerId, meta: { name: "Bea" } },
    ]);
    expect(await a.peer.next("peer-joined")).toMatchObject({ peer: { id: c.welcome.peerId } });
    b.peer.send({ type: "leave" });
    expect(await a.peer.next("peer-left")).toEqual({ type: "peer-left", peerId: b.welcome.peerId });
  }, 40_000);
});
