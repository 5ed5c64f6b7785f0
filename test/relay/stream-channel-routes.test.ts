/**
 * Channel routes of a TCP client: ChannelData that a client on a native TCP connection sends on a
 * routed channel goes to the peer from the native addon, without entering JavaScript
 * (relay/transport/native/stream-io.c cuts it out of the read; channel-routes.h), and the peer's
 * datagrams go to the client as padded ChannelData from the addon too, under the connection's
 * backlog rules (relay/transport/stream.ts: drop past the bound, count, hang up when it does not drain).
 *
 * Real sockets on 127.0.0.1: a native TCP listener served as the relay serves it
 * (serveStreamConnection), a Node net client, an allocation's native relay socket and a dgram peer.
 * The connection's frame hook records what reaches JavaScript and hands ChannelData to the
 * allocation as the relay does, so each test can tell a frame relayed in C from one handed up.
 */
import { createSocket } from "node:dgram";
import { connect, type Socket as TcpSocket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Allocation, type AllocationLimits, type AllocationOwner } from "../../relay/allocation/allocation.js";
import { ByteBucket } from "../../relay/policy/bandwidth.js";
import { SelfGuard } from "../../relay/policy/self-guard.js";
import { listenNativeStream, loadNativeStream, type NativeStreamSocket } from "../../relay/transport/native-stream.js";
import { STREAM_BACKLOG_BYTES, STREAM_BACKLOG_HARD_BYTES, STREAM_BACKLOG_TIMEOUT_MS, STREAM_CLOSE_REASONS, type StreamCounters } from "../../relay/transport/stream.js";
import { serveStreamConnection } from "../../relay/transport/stream-connection.js";
import { channelRouteTotals, openRelayUdpSocket, RELAY_SOCKET_BUFFER_BYTES } from "../../relay/transport/udp-socket.js";
import { waitUntil } from "./ops/ops-helpers.js";

const T0 = 1_700_000_000_000;
const CHANNEL = 0x4001;
const ARRIVE_MS = 2_000;
const QUIET_MS = 150;
const OWNER: AllocationOwner = { username: "1700000600:stream-routes", userId: "stream-routes", key: Buffer.alloc(16), credentialExpiresAt: 1_700_000_600 };
const LIMITS = { backlogBytes: STREAM_BACKLOG_BYTES, backlogHardBytes: STREAM_BACKLOG_HARD_BYTES, backlogTimeoutMs: STREAM_BACKLOG_TIMEOUT_MS, frameTimeoutMs: 10_000 };

const closers: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const waitFor = (condition: () => boolean): Promise<boolean> => waitUntil(condition, ARRIVE_MS, 5);
const quiet = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, QUIET_MS));

/** A ChannelData frame as a stream carries it: padded to 4 bytes (RFC 8656 §12.5). */
function frame(channel: number, payload: string | Buffer): Buffer {
  const data = typeof payload === "string" ? Buffer.from(payload) : payload;
  const message = Buffer.alloc(4 + ((data.length + 3) & ~3));
  message.writeUInt16BE(channel, 0);
  message.writeUInt16BE(data.length, 2);
  data.copy(message, 4);
  return message;
}

/** A STUN Binding request of `bodyLength` bytes of (comprehension-optional) attribute space. */
function bindingRequest(bodyLength = 0): Buffer {
  const message = Buffer.alloc(20 + bodyLength);
  message.writeUInt16BE(0x0001, 0);
  message.writeUInt16BE(bodyLength, 2);
  message.writeUInt32BE(0x2112a442, 4);
  message.fill(7, 8, 20);
  return message;
}

function write(client: TcpSocket, bytes: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => client.write(bytes, (error) => (error ? reject(error) : resolve())));
}

/** A TCP client's allocation on a native connection, set up as the relay serves it, and a peer. */
const UNMETERED: AllocationLimits = { clock: { now: T0 }, self: new SelfGuard([], [], []), bandwidth: null, sharedBandwidth: null };

async function setUp(limits: AllocationLimits = UNMETERED, streamLimits = LIMITS) {
  const server = listenNativeStream("127.0.0.1", 0);
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const accepted = new Promise<NativeStreamSocket>((resolve) => server.once("connection", resolve));
  const client = connect({ host: "127.0.0.1", port: server.address().port });
  client.setNoDelay(true);
  client.on("error", () => {});
  closers.push(() => void client.destroy());
  const fromClient: Buffer[] = [];
  client.on("data", (chunk: Buffer) => fromClient.push(chunk));
  const served = await accepted;

  const relaySocket = await openRelayUdpSocket("native", 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
  const peer = createSocket("udp4");
  const toPeer: { data: Buffer; port: number }[] = [];
  peer.on("message", (data, from) => toPeer.push({ data, port: from.port }));
  await new Promise<void>((resolve) => peer.bind(0, "127.0.0.1", resolve));
  closers.push(() => new Promise<void>((resolve) => peer.close(() => resolve())));

  const counters: StreamCounters = { streamBacklogDropped: 0, streamClosed: Object.fromEntries(STREAM_CLOSE_REASONS.map((reason) => [reason, 0])) as StreamCounters["streamClosed"] };
  const toJavaScript: Buffer[] = [];
  let allocation: Allocation | undefined;
  const link = serveStreamConnection(served, "tcp", streamLimits, 60_000, counters, {
    hasAllocation: () => allocation !== undefined,
    onFrame: (_link, bytes) => {
      toJavaScript.push(Buffer.from(bytes));
      if ((bytes[0]! & 0xc0) === 0x40) allocation?.toChannel(bytes.readUInt16BE(0), bytes, 4, bytes.length - 4);
    },
    onClose: () => {},
  });
  // What the allocation hands the link for the client in JavaScript (what no route took).
  const fromJavaScript: string[] = [];
  const sendChannelData = link.sendChannelData.bind(link);
  link.sendChannelData = (channel, data, offset, length) => {
    fromJavaScript.push(data.toString("latin1", offset, offset + length));
    sendChannelData(channel, data, offset, length);
  };
  allocation = new Allocation(link, OWNER, relaySocket, { family: 4, address: "127.0.0.1", port: relaySocket.address().port }, limits, { transactionId: "000000000000000000000000", digest: "test" }, 600_000);
  const opened = allocation;
  closers.push(() => new Promise<void>((resolve) => (opened.closed ? resolve() : opened.close(resolve))));
  const peerAddress = { family: 4 as const, address: "127.0.0.1", port: peer.address().port };
  return { client, served, link, peer, peerAddress, toPeer, relaySocket, allocation, toJavaScript, fromJavaScript, counters, fromClient };
}

/** Binds CHANNEL (and the permission) to the peer: the route is set. */
function bindToPeer(allocation: Allocation, peer: { family: 4; address: string; port: number }, lifetimeMs = 600_000): void {
  allocation.bindChannel(CHANNEL, peer, lifetimeMs, T0);
  allocation.permit(peer.address, 300_000, T0);
}

describe("channel routes of a TCP client (native TCP and UDP)", () => {
  it("loads the native addon's TCP here (npm run build:native; the test prerequisites build it)", () => {
    const native = loadNativeStream();
    expect(native.ok ? "loaded" : native.reason).toBe("loaded");
  });

  it("relay the client's ChannelData to the peer in C, padding dropped: JavaScript sees none of it, the counts are exact", async () => {
    const { client, peerAddress, toPeer, relaySocket, allocation, toJavaScript } = await setUp();
    const before = channelRouteTotals();
    bindToPeer(allocation, peerAddress);
    expect(channelRouteTotals().routes).toBe(before.routes + 1);
    await write(client, Buffer.concat([frame(CHANNEL, "one"), frame(CHANNEL, "two!"), frame(CHANNEL, "three")]));
    expect(await waitFor(() => toPeer.length === 3)).toBe(true);
    expect(toPeer.map((datagram) => datagram.data.toString())).toEqual(["one", "two!", "three"]);
    expect(toPeer.every((datagram) => datagram.port === relaySocket.address().port)).toBe(true);
    expect(toJavaScript).toEqual([]);
    expect(channelRouteTotals().routedToPeers - before.routedToPeers).toBe(3);
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 3, bytesToPeers: 12 });
  });

  it("leave the rest of a read to JavaScript in order, the routed frames cut out of it", async () => {
    const { client, peerAddress, toPeer, allocation, toJavaScript } = await setUp();
    bindToPeer(allocation, peerAddress);
    const stun = bindingRequest(8);
    const unbound = frame(0x4002, "not bound");
    await write(client, Buffer.concat([frame(CHANNEL, "a"), stun, frame(CHANNEL, "bc"), bindingRequest(), unbound]));
    expect(await waitFor(() => toPeer.length === 2 && toJavaScript.length === 3)).toBe(true);
    expect(toPeer.map((datagram) => datagram.data.toString())).toEqual(["a", "bc"]);
    // JavaScript gets its frames whole, padding dropped, as if the routed ones had never been sent.
    expect(toJavaScript).toEqual([stun, bindingRequest(), unbound.subarray(0, 4 + "not bound".length)]);
  });

  it("follow frames across reads: a frame or a length prefix split over writes goes to JavaScript, and routing resumes at the next read", async () => {
    const { client, peerAddress, toPeer, allocation, toJavaScript } = await setUp();
    bindToPeer(allocation, peerAddress);
    const split = frame(CHANNEL, "split frame");
    await write(client, split.subarray(0, 2)); // not even the length yet
    await quiet();
    await write(client, split.subarray(2, 9));
    await quiet();
    await write(client, Buffer.concat([split.subarray(9), frame(CHANNEL, "whole"), bindingRequest(4).subarray(0, 10)]));
    await quiet();
    await write(client, Buffer.concat([bindingRequest(4).subarray(10), frame(CHANNEL, "after")]));
    expect(await waitFor(() => toPeer.length === 3)).toBe(true);
    expect(toPeer.map((datagram) => datagram.data.toString())).toEqual(["split frame", "whole", "after"]);
    // Through JavaScript: the split frame, "whole" behind it in the same read (order), and the split
    // STUN message; "after" follows a request, which carries no data, and went in C.
    expect(toJavaScript).toEqual([split.subarray(0, 4 + "split frame".length), frame(CHANNEL, "whole").subarray(0, 9), bindingRequest(4)]);
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 3, bytesToPeers: "split frame".length + "whole".length + "after".length });
  });

  it("route nothing after bytes that are not TURN: JavaScript closes the connection", async () => {
    const { client, served, peerAddress, toPeer, allocation, counters } = await setUp();
    bindToPeer(allocation, peerAddress);
    await write(client, Buffer.concat([frame(CHANNEL, "first"), Buffer.from([0xff, 0, 0, 4, 1, 2, 3, 4]), frame(CHANNEL, "after garbage")]));
    expect(await waitFor(() => served.destroyed)).toBe(true);
    expect(counters.streamClosed.not_turn).toBe(1);
    await quiet();
    expect(toPeer.map((datagram) => datagram.data.toString())).toEqual(["first"]);
  });

  it("relay the peer's datagrams to the client in C as padded ChannelData, JavaScript sending none", async () => {
    const { peer, peerAddress, relaySocket, allocation, fromClient, fromJavaScript } = await setUp();
    bindToPeer(allocation, peerAddress);
    const before = channelRouteTotals().routedToClients;
    for (const payload of ["hello", "a", "four", "sixteen bytes!!!"]) peer.send(Buffer.from(payload), relaySocket.address().port, "127.0.0.1");
    const expected = Buffer.concat(["hello", "a", "four", "sixteen bytes!!!"].map((payload) => frame(CHANNEL, payload)));
    expect(await waitFor(() => Buffer.concat(fromClient).length === expected.length)).toBe(true);
    expect(Buffer.concat(fromClient)).toEqual(expected);
    expect(fromJavaScript).toEqual([]);
    expect(channelRouteTotals().routedToClients - before).toBe(4);
    expect(allocation.traffic).toMatchObject({ packetsToClient: 4, bytesToClient: 26 });
  });

  it("keep the backlog rules for a client that stops reading: drop past the bound, count, and hang up when it does not drain", async () => {
    const backlogBytes = 64 * 1024;
    const limits = { ...LIMITS, backlogBytes, backlogHardBytes: backlogBytes + 4096, backlogTimeoutMs: 400 };
    const { client, served, peer, peerAddress, relaySocket, allocation, counters, fromJavaScript } = await setUp(UNMETERED, limits);
    bindToPeer(allocation, peerAddress);
    client.pause();
    const payload = Buffer.alloc(1200, 0x55);
    const flood = async (datagrams: number) => {
      for (let i = 0; i < datagrams; i++) peer.send(payload, relaySocket.address().port, "127.0.0.1");
      await new Promise((resolve) => setImmediate(resolve));
    };
    let sent = 0;
    let mostQueued = 0;
    // Until the kernel's buffers on loopback are full, the queue behind them too, and frames are dropped;
    // bounded at 40,000 datagrams (48 MB).
    while (sent < 40_000 && (counters.streamBacklogDropped === 0 || served.writableLength === 0)) {
      await flood(50);
      sent += 50;
      mostQueued = Math.max(mostQueued, served.writableLength);
    }
    expect(counters.streamBacklogDropped).toBeGreaterThan(0);
    expect(served.writableLength).toBeGreaterThan(0);
    // The peer goes on sending; nothing drains, so the connection is hung up at a deadline (bounded: 3 s).
    const deadline = Date.now() + 3_000;
    while (!served.destroyed && Date.now() < deadline) {
      await flood(5);
      mostQueued = Math.max(mostQueued, served.writableLength);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(served.destroyed).toBe(true);
    expect(counters.streamClosed.backlog).toBe(1);
    expect(mostQueued).toBeLessThanOrEqual(backlogBytes);
    expect(fromJavaScript).toEqual([]);
  });

  it("go when the connection closes, and the allocation still counts what they relayed", async () => {
    const { client, served, peerAddress, toPeer, allocation } = await setUp();
    const before = channelRouteTotals().routes;
    bindToPeer(allocation, peerAddress);
    await write(client, Buffer.concat([frame(CHANNEL, "1234"), frame(CHANNEL, "5678")]));
    expect(await waitFor(() => toPeer.length === 2)).toBe(true);
    served.destroy();
    expect(channelRouteTotals().routes).toBe(before);
    expect(allocation.traffic).toMatchObject({ packetsToPeers: 2, bytesToPeers: 8 });
  });

  it("end with their lifetime: a frame after it goes to JavaScript, which decides (its clock here still has the channel)", async () => {
    const { client, peerAddress, toPeer, allocation, toJavaScript } = await setUp();
    bindToPeer(allocation, peerAddress, 100);
    const before = channelRouteTotals().routedToPeers;
    await new Promise((resolve) => setTimeout(resolve, 250));
    await write(client, frame(CHANNEL, "late"));
    expect(await waitFor(() => toJavaScript.length === 1 && toPeer.length === 1)).toBe(true);
    expect(channelRouteTotals().routedToPeers).toBe(before);
  });

  it("keep the order of the client's data: after a frame left to JavaScript (split, or a Send indication), the rest of the read waits for it", async () => {
    const { client, peerAddress, toPeer, allocation, toJavaScript } = await setUp();
    bindToPeer(allocation, peerAddress);
    const split = frame(CHANNEL, "first");
    await write(client, split.subarray(0, 6));
    await quiet();
    await write(client, Buffer.concat([split.subarray(6), frame(CHANNEL, "second"), bindingRequest(), frame(CHANNEL, "third")]));
    expect(await waitFor(() => toPeer.length === 3)).toBe(true);
    expect(toPeer.map((datagram) => datagram.data.toString())).toEqual(["first", "second", "third"]);
    expect(toJavaScript).toHaveLength(4);

    // A STUN indication (class bits 01) in front: what follows it in the read goes through JavaScript too.
    const indication = bindingRequest(4);
    indication.writeUInt16BE(0x0016, 0);
    toJavaScript.length = 0;
    await write(client, Buffer.concat([indication, frame(CHANNEL, "fourth")]));
    expect(await waitFor(() => toJavaScript.length === 2 && toPeer.length === 4)).toBe(true);
  });

  it("refuse what they cannot route, without throwing: bad numbers and peers, something that is no connection, a closed one", async () => {
    const { served, link, peerAddress, relaySocket } = await setUp();
    const routes = link.channelRoutesFrom(relaySocket)!;
    const before = channelRouteTotals().routes;
    expect(routes.set(0x3fff, "127.0.0.1", peerAddress.port, 60_000)).toBe(false);
    expect(routes.set(0x8000, "127.0.0.1", peerAddress.port, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "::1", peerAddress.port, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "127.0.0.1", 0, 60_000)).toBe(false);
    expect(routes.set(CHANNEL, "127.0.0.1", peerAddress.port, 0)).toBe(false);
    for (const notAConnection of [42, {}, "stream", null]) {
      expect(relaySocket.channelRoutesFromStream(notAConnection as never)!.set(CHANNEL, "127.0.0.1", peerAddress.port, 60_000)).toBe(false);
    }
    expect(channelRouteTotals().routes).toBe(before);
    expect(routes.set(CHANNEL, "127.0.0.1", peerAddress.port, 60_000)).toBe(true);
    served.destroy();
    expect(channelRouteTotals().routes).toBe(before);
    expect(routes.set(CHANNEL, "127.0.0.1", peerAddress.port, 60_000)).toBe(false);
    expect(link.channelRoutesFrom(relaySocket)).toBeNull();
  });

  it("are not offered between a native connection and a dgram relay socket", async () => {
    const { link } = await setUp();
    const dgramRelay = await openRelayUdpSocket("dgram", 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
    closers.push(() => new Promise<void>((resolve) => dgramRelay.close(() => resolve())));
    expect(link.channelRoutesFrom(dgramRelay)).toBeNull();
  });

  it("are never set under a bandwidth limit, nor for a connection that has closed", async () => {
    const metered = await setUp({ clock: { now: T0 }, self: new SelfGuard([], [], []), bandwidth: new ByteBucket(1_000_000), sharedBandwidth: null });
    const before = channelRouteTotals().routes;
    bindToPeer(metered.allocation, metered.peerAddress);
    expect(channelRouteTotals().routes).toBe(before);
    await write(metered.client, frame(CHANNEL, "metered"));
    expect(await waitFor(() => metered.toPeer.length === 1 && metered.toJavaScript.length === 1)).toBe(true);

    const gone = await setUp();
    gone.served.destroy();
    bindToPeer(gone.allocation, gone.peerAddress);
    expect(channelRouteTotals().routes).toBe(before);
  });
});
