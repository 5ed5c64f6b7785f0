/**
 * Delivery order over real sockets against the local Worker (`npm start`): messages from one peer
 * arrive in the order sent, live and after a resume. (The in-process sockets of the workerd test
 * pool can reorder a burst on their own, so order is proven here, on the path browsers take.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_WORKER_HOOK_TIMEOUT_MS, sleep, startLocalWorker, type LocalWorker } from "./processes.js";
import { WsPeer } from "./ws-peer.js";

describe("delivery order", () => {
  let worker: LocalWorker;
  let base: string;
  const peers: WsPeer[] = [];
  const join = async (room: string, query: Record<string, string> = {}) => {
    const peer = await WsPeer.join(base, room, query);
    peers.push(peer);
    return peer;
  };

  beforeAll(async () => {
    worker = await startLocalWorker();
    base = `ws://127.0.0.1:${worker.port}`;
  }, LOCAL_WORKER_HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
    await worker?.stop();
  }, LOCAL_WORKER_HOOK_TIMEOUT_MS);

  it("keeps each sender's order when two peers burst at a third", async () => {
    const room = `order-${Date.now()}`;
    const [a, b, c] = [await join(room), await join(room), await join(room)];
    const burst = 90; // inside the default burst of the rate limit
    for (let i = 0; i < burst; i++) {
      a.send({ type: "signal", to: c.welcome.peerId, data: i });
      b.send({ type: "signal", to: c.welcome.peerId, data: i });
    }
    await c.waitFor(() => c.frames.filter((f) => f.type === "signal").length === 2 * burst, `${2 * burst} signals`);
    const inOrder = Array.from({ length: burst }, (_, i) => i);
    expect(c.signalsFrom(a.welcome.peerId)).toEqual(inOrder);
    expect(c.signalsFrom(b.welcome.peerId)).toEqual(inOrder);
  });

  it("delivers the signals queued for a dropped peer in the order sent, before new ones", async () => {
    const room = `order-resume-${Date.now()}`;
    const [a, b] = [await join(room), await join(room)];
    await b.close(4000);
    await sleep(300);
    for (let i = 0; i < 40; i++) a.send({ type: "signal", to: b.welcome.peerId, data: i });
    await sleep(300);
    const back = await join(room, { resume: b.welcome.resumeToken });
    expect(back.welcome.resumed).toBe(true);
    a.send({ type: "signal", to: b.welcome.peerId, data: "live" });
    await back.waitFor(() => back.signalsFrom(a.welcome.peerId).length === 41, "41 signals");
    expect(back.signalsFrom(a.welcome.peerId)).toEqual([...Array.from({ length: 40 }, (_, i) => i), "live"]);
  });
});
