/**
 * An allocation's timers, with a fake clock (plain numbers): permissions and channel bindings live
 * exactly their lifetime (alive at expiry - 1 ms, gone at expiry), refreshing extends them, `sweep`
 * drops what ran out from every map, and refreshing a channel keeps the one binding. The data path
 * reads the same clock (a `DataPathClock`, its `now` set by hand here): a datagram from a peer whose permission
 * ran out is dropped, and ChannelData on an expired channel goes nowhere.
 *
 * The allocation gets a real UDP socket on 127.0.0.1 (closed after each test) and a stub client link
 * that records what would go to the client.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { Allocation, type AllocationOwner, type ClientLink } from "../../relay/allocation/allocation.js";
import { CHANNEL_LIFETIME_SECONDS, PERMISSION_LIFETIME_SECONDS } from "../../relay/config.js";
import { SelfGuard } from "../../relay/policy/self-guard.js";
import type { TransportAddress } from "../../relay/stun/attributes.js";
import { openRelayUdpSocket, RELAY_SOCKET_BUFFER_BYTES, type RelayUdpSocket } from "../../relay/transport/udp-socket.js";

const PERMISSION_MS = PERMISSION_LIFETIME_SECONDS * 1000;
const CHANNEL_MS = CHANNEL_LIFETIME_SECONDS * 1000;
/** A fake "now": any number will do, the allocation never reads the wall clock for these timers. */
const T0 = 1_700_000_000_000;
const PEER_A = "192.0.2.10";
const PEER_B = "198.51.100.20";
const ARRIVE_MS = 2_000;
const QUIET_MS = 200;

interface StubLink extends ClientLink {
  readonly stun: Buffer[];
  readonly channelData: { channel: number; data: Buffer }[];
}

function stubLink(): StubLink {
  const stun: Buffer[] = [];
  const channelData: { channel: number; data: Buffer }[] = [];
  return {
    transport: "udp",
    address: { family: 4, address: "127.0.0.1", port: 50_000 },
    listener: "127.0.0.1:3478",
    key: "udp:127.0.0.1:50000@127.0.0.1:3478",
    stun,
    channelData,
    closed: false,
    sendStun: (message) => stun.push(Buffer.from(message)),
    sendDataIndication: (message) => stun.push(Buffer.from(message)),
    sendChannelData: (channel, data, offset, length) => channelData.push({ channel, data: Buffer.from(data.subarray(offset, offset + length)) }),
  };
}

const OWNER: AllocationOwner = { username: "1700000600:timers", userId: "timers", key: Buffer.alloc(16), credentialExpiresAt: 1_700_000_600 };

const sockets: Socket[] = [];
const allocations: Allocation[] = [];

afterEach(async () => {
  await Promise.all(allocations.splice(0).map((allocation) => new Promise<void>((resolve) => (allocation.closed ? resolve() : allocation.close(resolve)))));
  for (const socket of sockets.splice(0)) {
    try {
      socket.close();
    } catch {
      // closed with its allocation
    }
  }
});

async function udpSocket(): Promise<Socket> {
  const socket = createSocket("udp4");
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return socket;
}

/** An allocation on a relay socket of either implementation (udp-socket.ts); dgram unless asked. */
async function newAllocation(io: "native" | "dgram" = "dgram"): Promise<{ allocation: Allocation; link: StubLink; clock: { now: number }; socket: RelayUdpSocket }> {
  const socket = await openRelayUdpSocket(io, 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
  const link = stubLink();
  // `now` moves only when a test sets it.
  const clock = { now: T0 };
  const port = socket.address().port;
  const allocation = new Allocation(
    link,
    OWNER,
    socket,
    { family: 4, address: "127.0.0.1", port },
    { clock, self: new SelfGuard([], [], []), bandwidth: null, sharedBandwidth: null },
    { transactionId: "000000000000000000000000", digest: "test" },
    600_000,
  );
  allocations.push(allocation);
  return { allocation, link, clock, socket };
}

function peer(address: string, port: number): TransportAddress {
  return { family: address.includes(":") ? 6 : 4, address, port };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return condition();
}

describe("permissions", () => {
  it("last exactly their lifetime: alive at now + lifetime - 1, gone at now + lifetime", async () => {
    const { allocation } = await newAllocation();
    expect(allocation.hasPermission(PEER_A, T0)).toBe(false);
    allocation.permit(PEER_A, PERMISSION_MS, T0);
    expect(allocation.hasPermission(PEER_A, T0)).toBe(true);
    expect(allocation.hasPermission(PEER_A, T0 + PERMISSION_MS - 1)).toBe(true);
    expect(allocation.hasPermission(PEER_A, T0 + PERMISSION_MS)).toBe(false);
    expect(allocation.hasPermission(PEER_A, T0 + PERMISSION_MS + 1)).toBe(false);
    expect(allocation.hasPermission(PEER_B, T0)).toBe(false);
  });

  it("are per IP address: any port of a permitted IP, no other IP", async () => {
    const { allocation } = await newAllocation();
    allocation.permit(PEER_A, PERMISSION_MS, T0);
    expect(allocation.hasPermission(PEER_A, T0 + 1)).toBe(true);
    expect(allocation.hasPermission("192.0.2.11", T0 + 1)).toBe(false);
    expect(allocation.permissions.size).toBe(1);
  });

  it("are extended by a refresh, from the refresh's time", async () => {
    const { allocation } = await newAllocation();
    allocation.permit(PEER_A, PERMISSION_MS, T0);
    const refreshedAt = T0 + PERMISSION_MS - 1_000;
    allocation.permit(PEER_A, PERMISSION_MS, refreshedAt);
    expect(allocation.permissions.size).toBe(1);
    expect(allocation.hasPermission(PEER_A, T0 + PERMISSION_MS)).toBe(true);
    expect(allocation.hasPermission(PEER_A, refreshedAt + PERMISSION_MS - 1)).toBe(true);
    expect(allocation.hasPermission(PEER_A, refreshedAt + PERMISSION_MS)).toBe(false);
  });

  it("can be reinstalled after they ran out", async () => {
    const { allocation } = await newAllocation();
    allocation.permit(PEER_A, PERMISSION_MS, T0);
    const later = T0 + 2 * PERMISSION_MS;
    expect(allocation.hasPermission(PEER_A, later)).toBe(false);
    allocation.permit(PEER_A, PERMISSION_MS, later);
    expect(allocation.hasPermission(PEER_A, later + PERMISSION_MS - 1)).toBe(true);
  });

  it("are swept exactly when they run out, each on its own time", async () => {
    const { allocation } = await newAllocation();
    allocation.permit(PEER_A, PERMISSION_MS, T0);
    allocation.permit(PEER_B, PERMISSION_MS, T0 + 10_000);
    allocation.sweep(T0 + PERMISSION_MS - 1);
    expect([...allocation.permissions.keys()].sort()).toEqual([PEER_A, PEER_B].sort());
    allocation.sweep(T0 + PERMISSION_MS);
    expect([...allocation.permissions.keys()]).toEqual([PEER_B]);
    allocation.sweep(T0 + 10_000 + PERMISSION_MS);
    expect(allocation.permissions.size).toBe(0);
    // Sweeping again, or sweeping an empty allocation, changes nothing.
    allocation.sweep(T0 + 10 * PERMISSION_MS);
    expect(allocation.permissions.size).toBe(0);
  });
});

describe("allocations without permissions or channels", () => {
  // They share one set of empty maps (what 10,000 idle allocations would otherwise each hold): a
  // permission or channel must go into the allocation's own map, never into the shared one.
  it("never see another allocation's permissions or channels, before or after a sweep empties them", async () => {
    const { allocation: first } = await newAllocation();
    const { allocation: second } = await newAllocation();
    first.permit(PEER_A, PERMISSION_MS, T0);
    first.bindChannel(0x4000, peer(PEER_A, 5000), CHANNEL_MS, T0);
    expect(second.permissions.size).toBe(0);
    expect(second.hasPermission(PEER_A, T0)).toBe(false);
    expect(second.channelsByNumber.size).toBe(0);
    expect(second.channelsByPeer.get(PEER_A, 5000)).toBeUndefined();

    // Swept empty, the first is back on the shared maps; what it gets next is its own again.
    first.sweep(T0 + CHANNEL_MS);
    expect(first.permissions.size).toBe(0);
    expect(first.channelsByNumber.size).toBe(0);
    expect(first.channelsByPeer.size).toBe(0);
    second.permit(PEER_B, PERMISSION_MS, T0);
    second.bindChannel(0x4001, peer(PEER_B, 6000), CHANNEL_MS, T0);
    expect(first.hasPermission(PEER_B, T0)).toBe(false);
    expect(first.channelsByNumber.get(0x4001)).toBeUndefined();
    expect(first.channelsByPeer.get(PEER_B, 6000)).toBeUndefined();
    const { allocation: third } = await newAllocation();
    expect(third.permissions.size).toBe(0);
    expect(third.channelsByNumber.size).toBe(0);
    expect(third.channelsByPeer.size).toBe(0);
    expect(second.channelsByPeer.get(PEER_B, 6000)?.number).toBe(0x4001);
  });
});

describe("channel bindings", () => {
  it("are swept exactly when they run out, from both maps", async () => {
    const { allocation } = await newAllocation();
    allocation.bindChannel(0x4000, peer(PEER_A, 5000), CHANNEL_MS, T0);
    allocation.bindChannel(0x4001, peer(PEER_B, 6000), CHANNEL_MS, T0 + 60_000);
    expect(allocation.channelsByNumber.size).toBe(2);
    expect(allocation.channelsByPeer.size).toBe(2);

    allocation.sweep(T0 + CHANNEL_MS - 1);
    expect([...allocation.channelsByNumber.keys()].sort()).toEqual([0x4000, 0x4001]);
    expect(allocation.channelsByPeer.size).toBe(2);

    allocation.sweep(T0 + CHANNEL_MS);
    expect([...allocation.channelsByNumber.keys()]).toEqual([0x4001]);
    expect(allocation.channelsByPeer.get(PEER_A, 5000)).toBeUndefined();
    expect(allocation.channelsByPeer.get(PEER_B, 6000)?.number).toBe(0x4001);
    expect(allocation.channelsByPeer.size).toBe(1);

    allocation.sweep(T0 + 60_000 + CHANNEL_MS);
    expect(allocation.channelsByNumber.size).toBe(0);
    expect(allocation.channelsByPeer.size).toBe(0);
    expect([...allocation.channelsByPeer.values()]).toEqual([]);
  });

  it("keep the same binding when refreshed, with the new expiry in both maps", async () => {
    const { allocation } = await newAllocation();
    const target = peer(PEER_A, 5000);
    allocation.bindChannel(0x4000, target, CHANNEL_MS, T0);
    const binding = allocation.channelsByNumber.get(0x4000)!;
    expect(binding).toMatchObject({ number: 0x4000, peer: target, expiresAt: T0 + CHANNEL_MS });

    const refreshedAt = T0 + CHANNEL_MS - 1_000;
    allocation.bindChannel(0x4000, target, CHANNEL_MS, refreshedAt);
    expect(allocation.channelsByNumber.size).toBe(1);
    expect(allocation.channelsByPeer.size).toBe(1);
    expect(allocation.channelsByNumber.get(0x4000)).toBe(binding);
    expect(allocation.channelsByPeer.get(PEER_A, 5000)).toBe(binding);
    expect(binding.expiresAt).toBe(refreshedAt + CHANNEL_MS);
    expect(binding.peer).toEqual(target);

    allocation.sweep(T0 + CHANNEL_MS);
    expect(allocation.channelsByNumber.get(0x4000)).toBe(binding);
    allocation.sweep(refreshedAt + CHANNEL_MS - 1);
    expect(allocation.channelsByPeer.get(PEER_A, 5000)).toBe(binding);
    allocation.sweep(refreshedAt + CHANNEL_MS);
    expect(allocation.channelsByNumber.size).toBe(0);
    expect(allocation.channelsByPeer.size).toBe(0);
  });

  it("sweep permissions and channels independently: a channel outlives its peer's permission", async () => {
    const { allocation } = await newAllocation();
    allocation.bindChannel(0x4000, peer(PEER_A, 5000), CHANNEL_MS, T0);
    allocation.permit(PEER_A, PERMISSION_MS, T0);
    allocation.sweep(T0 + PERMISSION_MS);
    expect(allocation.permissions.size).toBe(0);
    expect(allocation.channelsByNumber.size).toBe(1);
    expect(allocation.channelsByPeer.size).toBe(1);
  });

  it("can bind the same number and peer again once swept", async () => {
    const { allocation } = await newAllocation();
    allocation.bindChannel(0x4000, peer(PEER_A, 5000), CHANNEL_MS, T0);
    const first = allocation.channelsByNumber.get(0x4000)!;
    allocation.sweep(T0 + CHANNEL_MS);
    allocation.bindChannel(0x4000, peer(PEER_A, 5000), CHANNEL_MS, T0 + CHANNEL_MS);
    const second = allocation.channelsByNumber.get(0x4000)!;
    expect(second).not.toBe(first);
    expect(second.expiresAt).toBe(T0 + 2 * CHANNEL_MS);
    expect(allocation.channelsByPeer.get(PEER_A, 5000)).toBe(second);
  });
});

for (const io of ["native", "dgram"] as const) describe(`the data path on the allocation's clock (${io} UDP)`, () => {
  it("delivers a peer's datagram while its permission lasts, on its channel, and drops it from the expiry on", async () => {
    const { allocation, link, clock, socket } = await newAllocation(io);
    const far = await udpSocket();
    const farPort = far.address().port;
    const relayPort = socket.address().port;
    allocation.permit("127.0.0.1", PERMISSION_MS, T0);

    clock.now = T0 + PERMISSION_MS - 1;
    far.send(Buffer.from("indication"), relayPort, "127.0.0.1");
    expect(await waitUntil(() => link.stun.length === 1, ARRIVE_MS), "no Data indication").toBe(true);
    expect(allocation.traffic.packetsToClient).toBe(1);

    allocation.bindChannel(0x4000, peer("127.0.0.1", farPort), CHANNEL_MS, T0);
    far.send(Buffer.from("channel"), relayPort, "127.0.0.1");
    expect(await waitUntil(() => link.channelData.length === 1, ARRIVE_MS), "no ChannelData").toBe(true);
    expect(link.channelData[0]).toEqual({ channel: 0x4000, data: Buffer.from("channel") });

    clock.now = T0 + PERMISSION_MS;
    far.send(Buffer.from("late"), relayPort, "127.0.0.1");
    expect(await waitUntil(() => allocation.traffic.droppedFromPeers === 1, ARRIVE_MS), "the late datagram was not counted as dropped").toBe(true);
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    expect(link.stun.length).toBe(1);
    expect(link.channelData.length).toBe(1);
    expect(allocation.traffic.packetsToClient).toBe(2);
  });

  it("sends client ChannelData while channel and permission last, and not from either's expiry on", async () => {
    const { allocation, clock } = await newAllocation(io);
    const far = await udpSocket();
    const received: Buffer[] = [];
    far.on("message", (data) => received.push(data));
    const target = peer("127.0.0.1", far.address().port);
    const frame = Buffer.from([0x40, 0x00, 0x00, 0x02, 0x68, 0x69]);

    allocation.permit("127.0.0.1", PERMISSION_MS, T0);
    allocation.bindChannel(0x4000, target, CHANNEL_MS, T0);
    expect(allocation.toChannel(0x4001, frame, 4, 2)).toBe(false); // never bound
    clock.now = T0 + PERMISSION_MS - 1;
    expect(allocation.toChannel(0x4000, frame, 4, 2)).toBe(true);
    expect(await waitUntil(() => received.length === 1, ARRIVE_MS)).toBe(true);
    expect(received[0]!.toString()).toBe("hi");

    // The permission runs out before the channel (5 vs 10 minutes): nothing goes out.
    clock.now = T0 + PERMISSION_MS;
    expect(allocation.toChannel(0x4000, frame, 4, 2)).toBe(false);
    // A refreshed permission opens the channel again, until the channel itself runs out.
    allocation.permit("127.0.0.1", PERMISSION_MS, T0 + CHANNEL_MS - 1);
    clock.now = T0 + CHANNEL_MS - 1;
    expect(allocation.toChannel(0x4000, frame, 4, 2)).toBe(true);
    clock.now = T0 + CHANNEL_MS;
    expect(allocation.toChannel(0x4000, frame, 4, 2)).toBe(false);
    expect(await waitUntil(() => received.length === 2, ARRIVE_MS)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    expect(received.length).toBe(2);
    expect(allocation.traffic.packetsToPeers).toBe(2);
  });

  it("closes its socket once, and calls back when the port is free", async () => {
    const { allocation, socket } = await newAllocation(io);
    const port = socket.address().port;
    await new Promise<void>((resolve) => allocation.close(resolve));
    expect(allocation.closed).toBe(true);
    allocation.close(() => {
      throw new Error("a second close must do nothing");
    });
    const again = createSocket("udp4");
    sockets.push(again);
    await new Promise<void>((resolve, reject) => {
      again.once("error", reject);
      again.bind(port, "127.0.0.1", () => resolve());
    });
  });
});
