/**
 * A draining relay lets its calls leave, then lets itself go: new allocations are refused (508), an
 * allocation that keeps relaying (a call that has not moved) stays up, and one that relays almost
 * nothing for DRAIN_QUIET_MS (its call moved to another relay: browsers keep the old allocation
 * refreshed for a while after an ICE restart) is ended, so `whenIdle` resolves as soon as the last
 * call has gone rather than at --drain-timeout. Relay ports 28200-28219 (below the system's ephemeral range) are this suite's own.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DRAIN_QUIET_MS, DRAIN_QUIET_PACKETS, type RelayEvent, type RelayServer } from "../../relay/server/relay-server.js";
import { allocateOk, createPermission } from "./ops/ops-helpers.js";
import { TurnTestClient, UdpPeer, mint, sendIndication, startRelay } from "./turn-client.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const closers: { close(): void }[] = [];
const relays: RelayServer[] = [];

afterEach(async () => {
  for (const closer of closers.splice(0)) closer.close();
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
});

describe("draining", () => {
  it("ends the allocations that carry no call, keeps the one that does until it stops, and is idle at once after", async () => {
    const ended: RelayEvent[] = [];
    const { relay, port } = await startRelay(["--min-port=28200", "--max-port=28209", "--allow-loopback-peers"], (event) => {
      if (event.event === "allocation-end") ended.push(event);
    });
    relays.push(relay);
    const peer = await UdpPeer.open();
    closers.push(peer);
    const peerAddress = { family: 4 as const, address: "127.0.0.1", port: peer.port };

    const busy = await TurnTestClient.open(port);
    const quiet = await TurnTestClient.open(port);
    closers.push(busy, quiet);
    const busyCredential = await mint("in-a-call");
    await allocateOk(busy, busyCredential);
    await createPermission(busy, busyCredential, peerAddress);
    await allocateOk(quiet, await mint("moved-away"));

    relay.drain();
    const drainedAt = Date.now();
    // The call: 50 packets a second (audio's rate), for twice the quiet window and more.
    const callMs = DRAIN_QUIET_MS * 2 + 1_000;
    let sent = 0;
    while (Date.now() - drainedAt < callMs) {
      busy.sendRaw(sendIndication(peerAddress, Buffer.from(`frame ${sent++}`)));
      await sleep(20);
    }
    expect(await peer.waitFor(Math.floor(sent * 0.9)), `the peer got ${peer.received.length} of ${sent}`).toBe(true);

    // The quiet one went within a sweep or two of the window; the call is still there.
    expect(ended.map((event) => [event["user"], event["reason"]])).toEqual([["moved-away", "drained: carried no call"]]);
    expect(relay.allocationCount).toBe(1);

    // The call stops (it moved): the relay is idle within the window, long before any drain timeout.
    const stoppedAt = Date.now();
    expect(await relay.whenIdle(DRAIN_QUIET_MS + 3_000)).toBe(true);
    expect(Date.now() - stoppedAt).toBeLessThan(DRAIN_QUIET_MS + 3_000);
    expect(ended.map((event) => event["user"])).toEqual(["moved-away", "in-a-call"]);
  }, 40_000);

  it("leaves quiet allocations alone while not draining", async () => {
    const { relay, port } = await startRelay(["--min-port=28210", "--max-port=28219"]);
    relays.push(relay);
    const client = await TurnTestClient.open(port);
    closers.push(client);
    await allocateOk(client, await mint("idle-but-welcome"));
    await sleep(DRAIN_QUIET_MS + 1_500);
    expect(relay.allocationCount).toBe(1);
    expect(DRAIN_QUIET_PACKETS).toBeLessThan(50 * (DRAIN_QUIET_MS / 1000));
  }, 20_000);
});
