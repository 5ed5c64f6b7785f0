/**
 * Channel routes: a UDP client's bound channels relayed by the native addon without entering
 * JavaScript (relay/transport/native/channel-routes.h, driven by relay/allocation/allocation.ts).
 *
 * Real native sockets on 127.0.0.1: a listener, an allocation's relay socket, and plain dgram
 * sockets for the client and the peer. The listener's `onDatagram` records what reaches JavaScript,
 * so each test can tell a datagram relayed in C from one handed up. The allocation's clock is a
 * plain number; a route's lifetime runs on the event loop's clock, so expiry is shown with short
 * lifetimes and a real wait.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { Allocation, type AllocationLimits, type AllocationOwner, type ClientLink } from "../../relay/allocation/allocation.js";
import { ByteBucket } from "../../relay/policy/bandwidth.js";
import { SelfGuard } from "../../relay/policy/self-guard.js";
import { loadNativeUdp } from "../../relay/transport/native-udp.js";
import { UdpClientLink } from "../../relay/transport/udp.js";
import { channelRouteTotals, openRelayUdpSocket, RELAY_SOCKET_BUFFER_BYTES, type RelayUdpSocket } from "../../relay/transport/udp-socket.js";
import { waitUntil } from "./ops/ops-helpers.js";

const T0 = 1_700_000_000_000;
const CHANNEL = 0x4001;
const ARRIVE_MS = 2_000;
const QUIET_MS = 150;
const OWNER: AllocationOwner = { username: "1700000600:routes", userId: "routes", key: Buffer.alloc(16), credentialExpiresAt: 1_700_000_600 };

const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface Received {
  data: Buffer;
  address: string;
  port: number;
}

/** A plain dgram socket on 127.0.0.1 that records what it receives. */
async function endpoint(): Promise<{ socket: Socket; port: number; received: Received[] }> {
  const socket = createSocket("udp4");
  const received: Received[] = [];
  socket.on("message", (data, from) => received.push({ data, address: from.address, port: from.port }));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  closers.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { socket, port: socket.address().port, received };
}

async function nativeSocket(): Promise<RelayUdpSocket> {
  const socket = await openRelayUdpSocket("native", 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
  closers.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

/** What reaches JavaScript on a socket (its `onDatagram`), copied. */
function handedUp(socket: RelayUdpSocket): Buffer[] {
  const seen: Buffer[] = [];
  socket.onDatagram = (data, offset, length) => seen.push(Buffer.from(data.subarray(offset, offset + length)));
  return seen;
}

/** Records what the allocation sends its client from JavaScript (a datagram from a peer that no route took). */
function recordingLink(link: UdpClientLink): { link: ClientLink; fromJavaScript: { channel: number; data: Buffer }[] } {
  const fromJavaScript: { channel: number; data: Buffer }[] = [];
  const recording: ClientLink = {
    transport: link.transport,
    address: link.address,
    listener: link.listener,
    key: link.key,
    closed: false,
    sendStun: (message) => link.sendStun(message),
    sendDataIndication: (message) => link.sendDataIndication(message),
    sendChannelData: (channel, data, offset, length) => {
      fromJavaScript.push({ channel, data: Buffer.from(data.subarray(offset, offset + length)) });
      link.sendChannelData(channel, data, offset, length);
    },
    channelRoutesFrom: (relaySocket) => link.channelRoutesFrom(relaySocket),
  };
  return { link: recording, fromJavaScript };
}

const unmetered = (self = new SelfGuard([], [], [])): AllocationLimits => ({ clock: { now: T0 }, self, bandwidth: null, sharedBandwidth: null });

/** A native listener, an allocation for `client` on it (whose link offers routes, as the relay's UDP links do), and its relay socket. */
async function setUp(limits: AllocationLimits = unmetered()) {
  const client = await endpoint();
  const peer = await endpoint();
  const listener = await nativeSocket();
  const toJavaScript = handedUp(listener);
  const relaySocket = await nativeSocket();
  const udpLink = new UdpClientLink(listener, `127.0.0.1:${listener.address().port}`, "127.0.0.1", client.port);
  const { link, fromJavaScript } = recordingLink(udpLink);
  const allocation = new Allocation(
    link,
    OWNER,
    relaySocket,
    { family: 4, address: "127.0.0.1", port: relaySocket.address().port },
    limits,
    { transactionId: "000000000000000000000000", digest: "test" },
    600_000,
  );
  closers.push(() => new Promise<void>((resolve) => (allocation.closed ? resolve() : allocation.close(resolve))));
  return { client, peer, listener, toJavaScript, relaySocket, allocation, fromJavaScript };
}

function channelData(channel: number, payload: string): Buffer {
  const data = Buffer.from(payload);
  const message = Buffer.alloc(4 + data.length);
  message.writeUInt16BE(channel, 0);
  message.writeUInt16BE(data.length, 2);
  data.copy(message, 4);
  return message;
}

function send(from: Socket, message: Buffer, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => from.send(message, port, "127.0.0.1", (error) => (error ? reject(error) : resolve())));
}

const waitFor = (condition: () => boolean): Promise<boolean> => waitUntil(condition, ARRIVE_MS, 5);

const quiet = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, QUIET_MS));

describe("channel routes (native UDP)", () => {
  it("loads the native addon here (npm run build:native; the test prerequisites build it)", () => {
    const native = loadNativeUdp();
    expect(native.ok ? "loaded" : native.reason).toBe("loaded");
  });

  it("relay a live channel both ways in C: the peer gets the data, the client gets ChannelData, JavaScript sees neither", async () => {
    const { client, peer, listener, toJavaScript, relaySocket, allocation, fromJavaScript } = await setUp();
    const before = channelRouteTotals();
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    expect(channelRouteTotals().routes).toBe(before.routes + 1);

    await send(client.socket, channelData(CHANNEL, "to the peer"), listener.address().port);
    expect(await waitFor(() => peer.received.length === 1)).toBe(true);
    expect(peer.received[0]).toEqual({ data: Buffer.from("to the peer"), address: "127.0.0.1", port: relaySocket.address().port });

    await send(peer.socket, Buffer.from("to the client"), relaySocket.address().port);
    expect(await waitFor(() => client.received.length === 1)).toBe(true);
    expect(client.received[0]).toEqual({ data: channelData(CHANNEL, "to the client"), address: "127.0.0.1", port: listener.address().port });

    expect(toJavaScript).toEqual([]);
    expect(fromJavaScript).toEqual([]);
    const after = channelRouteTotals();
    expect([after.routedToPeers - before.routedToPeers, after.routedToClients - before.routedToClients]).toEqual([1, 1]);
  });

  it("count exactly what they relayed in the allocation's traffic, also once it has closed", async () => {
    const { client, peer, listener, relaySocket, allocation } = await setUp();
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    for (let i = 0; i < 5; i++) await send(client.socket, channelData(CHANNEL, "12345678"), listener.address().port);
    for (let i = 0; i < 3; i++) await send(peer.socket, Buffer.from("abc"), relaySocket.address().port);
    expect(await waitFor(() => peer.received.length === 5 && client.received.length === 3)).toBe(true);
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 5, bytesToPeers: 40, packetsToClient: 3, bytesToClient: 9 });
    // Read twice: collected once, not added again.
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 5, bytesToPeers: 40, packetsToClient: 3, bytesToClient: 9 });

    await send(client.socket, channelData(CHANNEL, "one more"), listener.address().port);
    expect(await waitFor(() => peer.received.length === 6)).toBe(true);
    await new Promise<void>((resolve) => allocation.close(resolve));
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 6, bytesToPeers: 48, packetsToClient: 3, bytesToClient: 9 });
  });

  it("relay a 60,000-byte datagram whole, drop one too big to wrap in ChannelData, and go on relaying", async () => {
    const { client, peer, relaySocket, allocation } = await setUp();
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    const large = Buffer.alloc(60_000, 7);
    await send(peer.socket, large, relaySocket.address().port);
    expect(await waitFor(() => client.received.length === 1)).toBe(true);
    expect(client.received[0]!.data.length).toBe(4 + large.length);
    expect(client.received[0]!.data.subarray(4).equals(large)).toBe(true);
    // 65,507 bytes is the most an IPv4 datagram carries: with the 4-byte header it cannot leave.
    await send(peer.socket, Buffer.alloc(65_507, 1), relaySocket.address().port);
    await send(peer.socket, Buffer.from("after"), relaySocket.address().port);
    expect(await waitFor(() => client.received.length === 2)).toBe(true);
    expect(client.received[1]!.data).toEqual(channelData(CHANNEL, "after"));
  });

  it("are not set without the peer's permission: the data goes to JavaScript", async () => {
    const { client, peer, listener, toJavaScript, allocation } = await setUp();
    const before = channelRouteTotals().routes;
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    expect(channelRouteTotals().routes).toBe(before);
    await send(client.socket, channelData(CHANNEL, "no permission"), listener.address().port);
    expect(await waitFor(() => toJavaScript.length === 1)).toBe(true);
    expect(peer.received).toEqual([]);
  });

  it("end with the earlier of the channel's and the permission's lifetimes, and a refresh gives them the new one", async () => {
    const { client, peer, listener, toJavaScript, relaySocket, allocation, fromJavaScript } = await setUp();
    // The permission runs out first (100 ms); the channel would live 10 minutes.
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 100, T0);
    await send(client.socket, channelData(CHANNEL, "in time"), listener.address().port);
    expect(await waitFor(() => peer.received.length === 1)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await send(client.socket, channelData(CHANNEL, "too late"), listener.address().port);
    await send(peer.socket, Buffer.from("too late"), relaySocket.address().port);
    // Past the route's end both go to JavaScript (which, on this test's standing clock, still relays the peer's).
    expect(await waitFor(() => toJavaScript.length === 1 && fromJavaScript.length === 1)).toBe(true);
    expect(toJavaScript[0]).toEqual(channelData(CHANNEL, "too late"));
    expect(peer.received).toHaveLength(1);

    // A new permission routes the channel again.
    allocation.permit("127.0.0.1", 300_000, T0);
    await send(client.socket, channelData(CHANNEL, "again"), listener.address().port);
    expect(await waitFor(() => peer.received.length === 2)).toBe(true);
    expect(peer.received[1]!.data).toEqual(Buffer.from("again"));
    expect(toJavaScript).toHaveLength(1);
  });

  it("keep what a route relayed before the sweep dropped it for the allocation's next count", async () => {
    const { client, peer, listener, allocation } = await setUp();
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 1_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    for (let i = 0; i < 4; i++) await send(client.socket, channelData(CHANNEL, "12345"), listener.address().port);
    expect(await waitFor(() => peer.received.length === 4)).toBe(true);
    allocation.sweep(T0 + 1_000);
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 4, bytesToPeers: 20 });
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 4, bytesToPeers: 20 });
  });

  it("go when the sweep drops the channel, and when the allocation closes", async () => {
    const { peer, allocation } = await setUp();
    const before = channelRouteTotals().routes;
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 1_000, T0);
    allocation.bindChannel(CHANNEL + 1, { family: 4, address: "127.0.0.1", port: peer.port + 1 }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    expect(channelRouteTotals().routes).toBe(before + 2);
    allocation.sweep(T0 + 1_000);
    expect(channelRouteTotals().routes).toBe(before + 1);
    await new Promise<void>((resolve) => allocation.close(resolve));
    expect(channelRouteTotals().routes).toBe(before);
  });

  it("go when the listener closes: the peer's data then goes to JavaScript", async () => {
    const { peer, listener, relaySocket, allocation, fromJavaScript } = await setUp();
    const before = channelRouteTotals().routes;
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    await new Promise<void>((resolve) => listener.close(() => resolve()));
    expect(channelRouteTotals().routes).toBe(before);
    await send(peer.socket, Buffer.from("after"), relaySocket.address().port);
    expect(await waitFor(() => fromJavaScript.length === 1)).toBe(true);
  });

  it("are never set for an allocation with a bandwidth limit: every datagram is metered in JavaScript", async () => {
    const limits: AllocationLimits = { clock: { now: T0 }, self: new SelfGuard([], [], []), bandwidth: new ByteBucket(1_000_000), sharedBandwidth: null };
    const { client, peer, listener, toJavaScript, allocation } = await setUp(limits);
    const before = channelRouteTotals().routes;
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    expect(channelRouteTotals().routes).toBe(before);
    await send(client.socket, channelData(CHANNEL, "metered"), listener.address().port);
    expect(await waitFor(() => toJavaScript.length === 1)).toBe(true);
  });

  it("are never set to one of the relay's own listeners", async () => {
    const listenerPort = 3478;
    const { allocation } = await setUp(unmetered(new SelfGuard([listenerPort], ["127.0.0.1"], [])));
    const before = channelRouteTotals().routes;
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: listenerPort }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    expect(channelRouteTotals().routes).toBe(before);
  });

  it("leave ChannelData of another channel, a short one and STUN to JavaScript", async () => {
    const { client, peer, listener, toJavaScript, allocation } = await setUp();
    allocation.bindChannel(CHANNEL, { family: 4, address: "127.0.0.1", port: peer.port }, 600_000, T0);
    allocation.permit("127.0.0.1", 300_000, T0);
    const unbound = channelData(CHANNEL + 7, "unbound");
    const truncated = channelData(CHANNEL, "cut short").subarray(0, 8);
    const stun = Buffer.from("000100002112a442000000000000000000000000", "hex");
    for (const message of [unbound, truncated, stun]) await send(client.socket, message, listener.address().port);
    expect(await waitFor(() => toJavaScript.length === 3)).toBe(true);
    expect(toJavaScript).toEqual([unbound, truncated, stun]);
    await quiet();
    expect(peer.received).toEqual([]);
  });

  it("keep one channel per peer: binding the peer's address to another number moves its route", async () => {
    const { client, peer, listener, toJavaScript, relaySocket } = await setUp();
    const routes = relaySocket.channelRoutesTo(listener, "127.0.0.1", client.port)!;
    const before = channelRouteTotals().routes;
    expect(routes.set(CHANNEL, "127.0.0.1", peer.port, 60_000)).toBe(true);
    expect(routes.set(CHANNEL + 1, "127.0.0.1", peer.port, 60_000)).toBe(true);
    expect(channelRouteTotals().routes).toBe(before + 1);
    await send(client.socket, channelData(CHANNEL + 1, "moved"), listener.address().port);
    await send(client.socket, channelData(CHANNEL, "old number"), listener.address().port);
    expect(await waitFor(() => peer.received.length === 1 && toJavaScript.length === 1)).toBe(true);
    expect(peer.received[0]!.data).toEqual(Buffer.from("moved"));
    routes.delete(CHANNEL + 1);
    expect(channelRouteTotals().routes).toBe(before);
  });

  it("refuse what they cannot route, without throwing: bad numbers, addresses, ports, lifetimes, a closed socket", async () => {
    const { client, peer, listener, relaySocket } = await setUp();
    const routes = relaySocket.channelRoutesTo(listener, "127.0.0.1", client.port)!;
    const before = channelRouteTotals().routes;
    expect(routes.set(0x3fff, "127.0.0.1", peer.port, 60_000)).toBe(false);
    expect(routes.set(0x8000, "127.0.0.1", peer.port, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "::1", peer.port, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "not an address", peer.port, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "127.0.0.1", 0, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "127.0.0.1", 70_000, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "127.0.0.1", peer.port, 0)).toBe(false);
    expect(routes.set(CHANNEL, "127.0.0.1", peer.port, Number.NaN)).toBe(false);
    const toWrongClient = relaySocket.channelRoutesTo(listener, "::1", client.port)!;
    expect(toWrongClient.set(CHANNEL, "127.0.0.1", peer.port, 60_000)).toBe(false);
    expect(channelRouteTotals().routes).toBe(before);
    await new Promise<void>((resolve) => relaySocket.close(() => resolve()));
    expect(routes.set(CHANNEL, "127.0.0.1", peer.port, 60_000)).toBe(false);
    expect(() => routes.delete(CHANNEL)).not.toThrow();
    const counts = { packetsToPeers: 0, bytesToPeers: 0, packetsToClient: 0, bytesToClient: 0 };
    routes.collect(counts);
    expect(counts).toEqual({ packetsToPeers: 0, bytesToPeers: 0, packetsToClient: 0, bytesToClient: 0 });
  });

  it("are not offered between a native relay socket and a dgram listener", async () => {
    const dgramListener = await openRelayUdpSocket("dgram", 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
    closers.push(() => new Promise<void>((resolve) => dgramListener.close(() => resolve())));
    const relaySocket = await nativeSocket();
    expect(relaySocket.channelRoutesTo(dgramListener, "127.0.0.1", 40_000)).toBeNull();
    expect(dgramListener.channelRoutesTo(relaySocket, "127.0.0.1", 40_000)).toBeNull();
  });
});
