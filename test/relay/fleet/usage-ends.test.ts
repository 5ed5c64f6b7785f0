/**
 * Every way an allocation ends reaches the usage ledger, exactly once, with the figures the
 * `allocation-end` line logs: an in-process RelayServer (real sockets on 127.0.0.1) with a
 * UsageLedger attached as its allocation meter. Ends covered: delete (Refresh 0), expiry, a
 * revocation, the client's TCP connection closing, a drain, and the relay stopping. A plain user's
 * allocation is never counted.
 * Ports (this file's band, 27000-27499): relay ports 27200-27249; the listener takes a free port.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../../shared/turn/credentials.js";
import { roomMemberUser } from "../../../shared/turn/turn-user.js";
import { UsageLedger } from "../../../relay/fleet/usage-ledger.js";
import { DRAIN_QUIET_MS, type RelayEvent, type RelayServer } from "../../../relay/server/relay-server.js";
import { StunClass } from "../../../relay/stun/constants.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, startRelay, type ClientTransport } from "../turn-client.js";
import { allocate, createPermission, deleteAllocation, waitUntil } from "../ops/ops-helpers.js";

const sockets: { close(): void }[] = [];
const relays: RelayServer[] = [];

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
}, 30_000);

interface Opened {
  client: TurnTestClient;
  credential: TurnCredential;
  relayedPort: number;
}

describe("every allocation end reaches the usage ledger", () => {
  it("delete, expiry, revocation, connection close, drain and stop each add the logged figures once", async () => {
    const events: RelayEvent[] = [];
    const { relay, port } = await startRelay(["--min-port=27200", "--max-port=27249", "--allow-loopback-peers"], (event) => events.push(event));
    relays.push(relay);
    const ledger = new UsageLedger({ boot: "usage-ends-test" });
    relay.setAllocationMeter(ledger);
    const peer = await UdpPeer.open();
    sockets.push(peer);

    const open = async (user: string, transport: ClientTransport, lifetimeSeconds?: number): Promise<Opened> => {
      const client = transport === "udp" ? await TurnTestClient.open(port) : await TurnTestClient.openStream(port, transport);
      sockets.push(client);
      const credential = await mint(user, 600);
      const answer = await allocate(client, credential, lifetimeSeconds);
      expect(answer.messageClass, `${user}: Allocate ${errorCodeOf(answer)}`).toBe(StunClass.SuccessResponse);
      expect((await createPermission(client, credential, { family: 4, address: "127.0.0.1", port: peer.port })).messageClass).toBe(StunClass.SuccessResponse);
      const allocation = [...relay.table.values()].find((a) => a.owner.userId === user)!;
      return { client, credential, relayedPort: allocation.relayedAddress.port };
    };
    /** `n` bytes to the peer and `m` back, each seen arriving. */
    const traffic = async (opened: Opened, n: number, m: number) => {
      const before = peer.received.length;
      opened.client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, Buffer.alloc(n, 1)));
      expect(await peer.waitFor(before + 1, 3_000)).toBe(true);
      peer.send(Buffer.alloc(m, 2), opened.relayedPort);
      expect(await opened.client.receive(3_000)).not.toBeNull();
    };
    const endOf = (user: string) => events.filter((e) => e.event === "allocation-end" && e.user === user);
    const ended = (user: string, timeoutMs: number) => waitUntil(() => endOf(user).length > 0, timeoutMs);

    // The members, one per way to end, and a plain user.
    const deleted = await open(roomMemberUser("ends", "deleted"), "udp");
    const expiring = await open(roomMemberUser("ends", "expired"), "udp", 1);
    const revoked = await open(roomMemberUser("ends", "revoked"), "tcp");
    const disconnected = await open(roomMemberUser("ends", "disconnected"), "tcp");
    const plain = await open("plain-user", "udp");
    const sizes: Record<string, [number, number]> = { deleted: [10, 20], expired: [30, 40], revoked: [50, 60], disconnected: [70, 80] };
    await traffic(deleted, ...sizes.deleted!);
    await traffic(expiring, ...sizes.expired!);
    await traffic(revoked, ...sizes.revoked!);
    await traffic(disconnected, ...sizes.disconnected!);
    await traffic(plain, 5, 5);
    expect(ledger.counts().live).toBe(4);

    expect((await deleteAllocation(deleted.client, deleted.credential)).messageClass).toBe(StunClass.SuccessResponse);
    expect(relay.revoke([{ room: "ends", peerId: "revoked", username: null, until: Math.floor(Date.now() / 1000) + 600 }]).ended).toBe(1);
    disconnected.client.close();
    expect(await ended(roomMemberUser("ends", "disconnected"), 3_000)).toBe(true);
    expect(await ended(roomMemberUser("ends", "expired"), 4_000)).toBe(true);

    // Then a drain ends a quiet member, and stopping the relay the last one.
    const drained = await open(roomMemberUser("ends", "drained"), "udp");
    const stopped = await open(roomMemberUser("ends", "stopped"), "udp");
    await traffic(drained, 90, 100);
    await traffic(stopped, 110, 120);
    sizes.drained = [90, 100];
    relay.drain();
    // Quiet for DRAIN_QUIET_MS from the first sweep that sees it: ended by a later sweep.
    // The other member keeps carrying a call (both ways, more than DRAIN_QUIET_PACKETS a DRAIN_QUIET_MS), so the drain leaves it.
    const keepBusy = setInterval(() => {
      stopped.client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, Buffer.alloc(110, 3)));
      peer.send(Buffer.alloc(120, 4), stopped.relayedPort);
    }, 100);
    try {
      expect(await ended(roomMemberUser("ends", "drained"), DRAIN_QUIET_MS + 4_000)).toBe(true);
    } finally {
      clearInterval(keepBusy);
    }
    // Let the last exchange of the busy member land before the relay stops.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await relay.stop();
    relays.splice(relays.indexOf(relay), 1);

    const reasons = Object.fromEntries(["deleted", "expired", "revoked", "disconnected", "drained", "stopped"].map((peerId) => [peerId, endOf(roomMemberUser("ends", peerId))]));
    expect(Object.fromEntries(Object.entries(reasons).map(([peerId, lines]) => [peerId, lines.map((l) => l.reason)]))).toEqual({
      deleted: ["deleted by the client"],
      expired: ["expired"],
      revoked: ["revoked"],
      disconnected: ["client connection closed"],
      drained: ["drained: carried no call"],
      stopped: ["relay stopping"],
    });
    const report = ledger.report();
    expect(ledger.counts()).toMatchObject({ live: 0, unacked: 6, settled: 0 });
    expect(report.entries).toHaveLength(6);
    for (const [peerId, [line]] of Object.entries(reasons)) {
      const entry = report.entries.find((e) => e.peerId === peerId);
      expect(entry, peerId).toEqual({ room: "ends", peerId, bytesToPeers: line!.bytesToPeers, bytesToClient: line!.bytesToClient, allocationMs: line!.lifetimeMs });
      if (peerId !== "stopped") expect([entry!.bytesToPeers, entry!.bytesToClient], peerId).toEqual(sizes[peerId]);
    }
    expect(endOf("plain-user")[0]).not.toHaveProperty("room");
  }, 60_000);
});
