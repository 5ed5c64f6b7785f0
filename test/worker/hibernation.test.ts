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
    await runInDurableObject(stub, (instance) => {
      (instance as unknown as Record<symbol, boolean>)[EVICTED] = true;
    });

    // Keep both peers alive with pings the runtime answers itself, for longer than the ~10 s idle eviction.
    for (let i = 0; i < 13; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      a.peer.send(PING_FRAME);
      b.peer.send(PING_FRAME);
      expect(await a.peer.next("pong")).toEqual({ type: "pong" });
      expect(await b.peer.next("pong")).toEqual({ type: "pong" });
    }
    const sameInstance = await runInDurableObject(stub, (instance) => (instance as unknown as Record<symbol, boolean>)[EVICTED] === true);
    expect(sameInstance).toBe(false);

    a.peer.send({ type: "signal", to: b.welcome.peerId, data: "after eviction" });
    expect(await b.peer.next("signal")).toEqual({ type: "signal", from: a.welcome.peerId, data: "after eviction" });
  }, 40_000);
});
