/**
 * The relay's transports and addresses, over real sockets on loopback:
 * - an IPv6 listener (::1) next to an IPv4 one (127.0.0.1) in one relay: Binding over UDP/::1 maps
 *   to ::1, and Allocate relays on IPv4 by default (RFC 8656 §7.2) and on IPv6 with
 *   REQUESTED-ADDRESS-FAMILY 6, whichever family the client came over; the relayed addresses work;
 * - `--external-ip=PUBLIC/PRIVATE`: XOR-RELAYED-ADDRESS shows the public address with the real port;
 * - TCP (RFC 8656 §12.5): STUN and ChannelData framed on a stream, ChannelData padded to 4 bytes
 *   both ways, and the allocation deleted (port back in the pool) when the connection closes.
 *
 * Relay ports 47200-47499 are this suite's own. Every wait is bounded, every socket closed.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, type Socket as TcpSocket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { ListenerAddress, RelayEvent, RelayServer } from "../../relay/server/relay-server.js";
import {
  dataView,
  encodeChannelNumber,
  encodeRequestedAddressFamily,
  encodeRequestedTransport,
  encodeText,
  encodeXorAddress,
  readXorAddress,
  type TransportAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey, verifyMessageIntegrity } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { nativeSendTotals } from "../../relay/transport/native-udp.js";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import { channelRouteTotals } from "../../relay/transport/udp-socket.js";
import { errorCodeOf, mint, startRelay, TEST_TCP_IO, TEST_UDP_IO, textOf } from "./turn-client.js";

const ARRIVE_MS = 2_000;
const QUIET_MS = 300;
const CHANNEL = 0x4000;
const UDP = encodeRequestedTransport(17);

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  return condition();
}

// ---------------------------------------------------------------------------------------------------------------
// A TURN client over any transport: it sends bytes and receives whole frames (one datagram, or one
// STUN message or ChannelData cut from the stream), with the long-term authentication dance.

abstract class Conversation {
  private readonly inbox: Buffer[] = [];
  realm: string | undefined;
  nonce: string | undefined;

  protected deliver(frame: Buffer): void {
    this.inbox.push(Buffer.from(frame));
  }

  abstract send(bytes: Buffer): void;
  abstract close(): void;

  /** The next frame from the relay, or null after `timeoutMs`. */
  async receive(timeoutMs = ARRIVE_MS): Promise<Buffer | null> {
    await waitUntil(() => this.inbox.length > 0, timeoutMs);
    return this.inbox.shift() ?? null;
  }

  /** The next STUN message, skipping nothing: whatever comes next must be STUN. */
  async receiveStun(timeoutMs = ARRIVE_MS): Promise<StunMessage> {
    const frame = await this.receive(timeoutMs);
    if (frame === null) throw new Error(`no answer from the relay within ${timeoutMs} ms`);
    const decoded = decodeStunMessage(frame);
    if (!decoded.ok) throw new Error(`not a STUN message (${decoded.reason}): ${frame.toString("hex")}`);
    return decoded.message;
  }

  /** A request signed with `credential`, learning REALM and NONCE from a 401 first. */
  async request(method: number, credential: TurnCredential, attributes: (transactionId: Buffer) => StunAttributeValue[]): Promise<StunMessage> {
    if (this.nonce === undefined) {
      const probeId = newTransactionId();
      this.send(buildStunMessage({ method, messageClass: StunClass.Request, transactionId: probeId, attributes: attributes(probeId) }));
      const challenge = await this.receiveStun();
      expect(errorCodeOf(challenge)).toBe(401);
      this.realm = textOf(challenge, AttributeType.Realm);
      this.nonce = textOf(challenge, AttributeType.Nonce);
      if (this.realm === undefined || this.nonce === undefined) throw new Error("the 401 carried no REALM or NONCE");
    }
    const transactionId = newTransactionId();
    this.send(
      buildStunMessage({
        method,
        messageClass: StunClass.Request,
        transactionId,
        attributes: [
          ...attributes(transactionId),
          encodeText(AttributeType.Username, credential.username),
          encodeText(AttributeType.Realm, this.realm!),
          encodeText(AttributeType.Nonce, this.nonce),
        ],
        messageIntegrityKey: longTermKey(credential.username, this.realm!, credential.password),
        fingerprint: true,
      }),
    );
    const answer = await this.receiveStun();
    expect(answer.method).toBe(method);
    expect(answer.transactionId.equals(transactionId)).toBe(true);
    return answer;
  }

  /** A signed success, or the test fails with the error code and reason. */
  async succeed(method: number, credential: TurnCredential, attributes: (transactionId: Buffer) => StunAttributeValue[]): Promise<StunMessage> {
    const answer = await this.request(method, credential, attributes);
    expect(answer.messageClass, `error ${errorCodeOf(answer)} ${textOf(answer, AttributeType.ErrorCode) ?? ""}`).toBe(StunClass.SuccessResponse);
    expect(verifyMessageIntegrity(answer, longTermKey(credential.username, this.realm!, credential.password))).toBe(true);
    return answer;
  }

  /** Allocate; returns XOR-RELAYED-ADDRESS and XOR-MAPPED-ADDRESS. */
  async allocate(credential: TurnCredential, family?: 4 | 6): Promise<{ relayed: TransportAddress; mapped: TransportAddress }> {
    const answer = await this.succeed(StunMethod.Allocate, credential, () => (family === undefined ? [UDP] : [UDP, encodeRequestedAddressFamily(family)]));
    return { relayed: xorAddress(answer, AttributeType.XorRelayedAddress), mapped: xorAddress(answer, AttributeType.XorMappedAddress) };
  }
}

function xorAddress(message: StunMessage, type: number): TransportAddress {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) throw new Error(`attribute 0x${type.toString(16)} is missing`);
  const read = readXorAddress(message, attribute);
  if (!read.ok) throw new Error(read.reason);
  return read.value;
}

class UdpConversation extends Conversation {
  private constructor(
    readonly socket: UdpSocket,
    private readonly server: { address: string; port: number },
  ) {
    super();
    socket.on("message", (data) => this.deliver(data));
  }

  static async open(server: { address: string; port: number }): Promise<UdpConversation> {
    const v6 = server.address.includes(":");
    const socket = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: v6 });
    await new Promise<void>((resolve) => socket.bind(0, v6 ? "::1" : "127.0.0.1", resolve));
    const conversation = new UdpConversation(socket, server);
    opened.push(conversation);
    return conversation;
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  send(bytes: Buffer): void {
    this.socket.send(bytes, this.server.port, this.server.address);
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // closed already
    }
  }
}

class TcpConversation extends Conversation {
  /** Every byte the relay sent, as it came off the stream, to check padding. */
  readonly raw: Buffer[] = [];
  closed = false;
  /** Bytes from the relay that are not TURN framing, if it ever sent any. */
  badFraming: string | undefined;

  private constructor(readonly socket: TcpSocket) {
    super();
    const framer = new StreamFramer((frame) => this.deliver(frame));
    socket.on("data", (chunk: Buffer) => {
      this.raw.push(Buffer.from(chunk));
      if (!framer.push(chunk)) this.badFraming ??= chunk.toString("hex");
    });
    socket.on("error", () => {});
    socket.on("close", () => (this.closed = true));
  }

  static async open(port: number, host = "127.0.0.1"): Promise<TcpConversation> {
    const socket = connect({ port, host });
    const conversation = new TcpConversation(socket);
    opened.push(conversation);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TCP connection to ${host}:${port} within ${ARRIVE_MS} ms`)), ARRIVE_MS);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    socket.setNoDelay(true);
    return conversation;
  }

  get rawBytes(): Buffer {
    return Buffer.concat(this.raw);
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): void {
    // Every TCP test ends here: whatever the relay sent on the stream was well framed.
    expect(this.badFraming, "the relay sent bytes that are not TURN framing").toBeUndefined();
    this.socket.destroy();
  }
}

/** A far peer on 127.0.0.1 or ::1. */
class Peer {
  readonly received: { data: Buffer; address: string; port: number }[] = [];

  private constructor(readonly socket: UdpSocket) {
    socket.on("message", (data, from) => this.received.push({ data, address: from.address, port: from.port }));
  }

  static async open(address: "127.0.0.1" | "::1"): Promise<Peer> {
    const v6 = address === "::1";
    const socket = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: v6 });
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    const peer = new Peer(socket);
    opened.push(peer);
    return peer;
  }

  get address(): TransportAddress {
    const bound = this.socket.address();
    return { family: bound.family === "IPv6" ? 6 : 4, address: bound.address, port: bound.port };
  }

  send(data: Buffer, to: TransportAddress): void {
    this.socket.send(data, to.port, to.address);
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // closed already
    }
  }
}

const opened: { close(): void }[] = [];
const relays: RelayServer[] = [];

afterEach(async () => {
  for (const socket of opened.splice(0)) socket.close();
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
});

async function relayWith(flags: string[]): Promise<{ relay: RelayServer; listeners: ListenerAddress[]; events: RelayEvent[] }> {
  const events: RelayEvent[] = [];
  let listeners: ListenerAddress[] = [];
  const { relay } = await startRelay(flags, (event) => events.push(event), (bound) => (listeners = bound));
  relays.push(relay);
  return { relay, listeners, events };
}

function listener(listeners: ListenerAddress[], transport: "udp" | "tcp", address: string): { address: string; port: number } {
  const found = listeners.find((l) => l.transport === transport && l.address === address);
  if (found === undefined) throw new Error(`no ${transport} listener on ${address}: ${JSON.stringify(listeners)}`);
  return { address: found.address, port: found.port };
}

function permissionAndChannel(conversation: Conversation, credential: TurnCredential, peer: TransportAddress): Promise<StunMessage> {
  return conversation.succeed(StunMethod.ChannelBind, credential, (id) => [encodeChannelNumber(CHANNEL), encodeXorAddress(AttributeType.XorPeerAddress, peer, id)]);
}

function channelDataFrame(channel: number, payload: Buffer, padded: boolean): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16BE(channel, 0);
  header.writeUInt16BE(payload.length, 2);
  const padding = padded ? (4 - (payload.length % 4)) % 4 : 0;
  return Buffer.concat([header, payload, Buffer.alloc(padding)]);
}

/** Checks a relayed address works: a peer's datagram to it comes back to the client on the channel. */
async function expectRelayWorks(conversation: Conversation, credential: TurnCredential, relayed: TransportAddress, peer: Peer): Promise<void> {
  await permissionAndChannel(conversation, credential, peer.address);
  const payload = Buffer.from(`through ${relayed.address}`);
  peer.send(payload, relayed);
  const frame = await conversation.receive();
  expect(frame, `nothing came back through ${relayed.address}:${relayed.port}`).not.toBeNull();
  expect(frame!.readUInt16BE(0)).toBe(CHANNEL);
  expect(frame!.subarray(4, 4 + frame!.readUInt16BE(2))).toEqual(payload);
  // And the other way: ChannelData from the client reaches the peer from the relayed address.
  conversation.send(channelDataFrame(CHANNEL, Buffer.from("back"), conversation instanceof TcpConversation));
  expect(await waitUntil(() => peer.received.length > 0, ARRIVE_MS), "the peer got nothing").toBe(true);
  expect(peer.received[0]!.data.toString()).toBe("back");
  expect(peer.received[0]!.port).toBe(relayed.port);
}

// ---------------------------------------------------------------------------------------------------------------

describe("IPv6 and IPv4 listeners in one relay", () => {
  const FLAGS = ["--listening-ip=::1", "--relay-ip=127.0.0.1", "--relay-ip=::1", "--allow-loopback-peers", "--min-port=47200", "--max-port=47299"];

  it("listens on both, over UDP and TCP, on the UDP and TCP implementations this run asks for", async () => {
    const { relay, listeners } = await relayWith(FLAGS);
    for (const address of ["127.0.0.1", "::1"]) for (const transport of ["udp", "tcp"] as const) expect(listener(listeners, transport, address).port).toBeGreaterThan(0);
    // native in the node project, dgram in node-dgram (vitest.config.ts): each pass tests what it says.
    expect(relay.udpImplementation).toBe(TEST_UDP_IO);
    expect(relay.tcpImplementation).toBe(TEST_TCP_IO);
  });

  it("answers Binding over UDP on ::1 with the client's ::1 address", async () => {
    const { listeners } = await relayWith(FLAGS);
    const client = await UdpConversation.open(listener(listeners, "udp", "::1"));
    const transactionId = newTransactionId();
    client.send(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId, attributes: [] }));
    const answer = await client.receiveStun();
    expect(answer.messageClass).toBe(StunClass.SuccessResponse);
    expect(answer.transactionId.equals(transactionId)).toBe(true);
    expect(xorAddress(answer, AttributeType.XorMappedAddress)).toEqual({ family: 6, address: "::1", port: client.localPort });
  });

  it("allocates an IPv4 relayed address by default to a client on ::1 (RFC 8656 §7.2), and it relays", async () => {
    const { relay, listeners, events } = await relayWith(FLAGS);
    const credential = await mint("v6-default");
    const listenerPort = listener(listeners, "udp", "::1");
    const client = await UdpConversation.open(listenerPort);
    const { relayed, mapped } = await client.allocate(credential);
    expect(mapped).toEqual({ family: 6, address: "::1", port: client.localPort });
    expect(relayed.family).toBe(4);
    expect(relayed.address).toBe("127.0.0.1");
    expect(relayed.port).toBeGreaterThanOrEqual(47200);
    expect(relayed.port).toBeLessThanOrEqual(47299);
    expect(relay.allocationCount).toBe(1);
    expect(events).toContainEqual(expect.objectContaining({ event: "allocation-start", client: `udp:::1:${client.localPort}@::1:${listenerPort.port}`, relayed: `127.0.0.1:${relayed.port}` }));
    await expectRelayWorks(client, credential, relayed, await Peer.open("127.0.0.1"));
  });

  it("allocates an IPv6 relayed address with REQUESTED-ADDRESS-FAMILY 6, over ::1 and over 127.0.0.1, and it relays", async () => {
    const { relay, listeners } = await relayWith(FLAGS);
    for (const over of ["::1", "127.0.0.1"]) {
      const credential = await mint(`v6-requested-${over === "::1" ? "6" : "4"}`);
      const client = await UdpConversation.open(listener(listeners, "udp", over));
      const { relayed, mapped } = await client.allocate(credential, 6);
      expect(mapped).toEqual({ family: over === "::1" ? 6 : 4, address: over, port: client.localPort });
      expect(relayed.family).toBe(6);
      expect(relayed.address).toBe("::1");
      expect(relayed.port).toBeGreaterThanOrEqual(47200);
      expect(relayed.port).toBeLessThanOrEqual(47299);
      await expectRelayWorks(client, credential, relayed, await Peer.open("::1"));
    }
    expect(relay.allocationCount).toBe(2);
  });

  it("allocates an IPv4 relayed address with REQUESTED-ADDRESS-FAMILY 4 over ::1", async () => {
    const { listeners } = await relayWith(FLAGS);
    const client = await UdpConversation.open(listener(listeners, "udp", "::1"));
    const { relayed } = await client.allocate(await mint("v6-asks-v4"), 4);
    expect(relayed).toMatchObject({ family: 4, address: "127.0.0.1" });
  });

  it("refuses REQUESTED-ADDRESS-FAMILY 6 with 440 when the relay has no IPv6 relay address", async () => {
    const { listeners } = await relayWith(["--relay-ip=127.0.0.1", "--min-port=47300", "--max-port=47309"]);
    const client = await UdpConversation.open(listener(listeners, "udp", "127.0.0.1"));
    const answer = await client.request(StunMethod.Allocate, await mint("no-v6"), () => [UDP, encodeRequestedAddressFamily(6)]);
    expect(answer.messageClass).toBe(StunClass.ErrorResponse);
    expect(errorCodeOf(answer)).toBe(440);
  });
});

describe("--external-ip", () => {
  it("advertises PUBLIC with the real relay port for the PRIVATE relay address", async () => {
    const { relay, listeners, events } = await relayWith(["--external-ip=203.0.113.7/127.0.0.1", "--allow-loopback-peers", "--min-port=47310", "--max-port=47329"]);
    const credential = await mint("behind-nat");
    const client = await UdpConversation.open(listener(listeners, "udp", "127.0.0.1"));
    const { relayed, mapped } = await client.allocate(credential);
    expect(mapped).toEqual({ family: 4, address: "127.0.0.1", port: client.localPort });
    const allocation = [...relay.table.values()][0]!;
    const bound = allocation.relaySocket.address();
    expect(bound.address).toBe("127.0.0.1");
    expect(relayed).toEqual({ family: 4, address: "203.0.113.7", port: bound.port });
    expect(relayed.port).toBeGreaterThanOrEqual(47310);
    expect(relayed.port).toBeLessThanOrEqual(47329);
    expect(events).toContainEqual(expect.objectContaining({ event: "allocation-start", relayed: `203.0.113.7:${bound.port}` }));
    // The advertised port is the bound one: a peer reaching the private address on it gets through.
    await expectRelayWorks(client, credential, { family: 4, address: "127.0.0.1", port: relayed.port }, await Peer.open("127.0.0.1"));
  });

  it("leaves the other family's relay address alone", async () => {
    const { listeners } = await relayWith([
      "--listening-ip=::1",
      "--relay-ip=127.0.0.1",
      "--relay-ip=::1",
      "--external-ip=203.0.113.7/127.0.0.1",
      "--min-port=47330",
      "--max-port=47339",
    ]);
    const client = await UdpConversation.open(listener(listeners, "udp", "::1"));
    const { relayed } = await client.allocate(await mint("v6-no-nat"), 6);
    expect(relayed).toMatchObject({ family: 6, address: "::1" });
  });
});

describe("TURN over TCP", () => {
  const FLAGS = ["--allow-loopback-peers", "--min-port=47400", "--max-port=47419"];

  it("answers Binding on a stream", async () => {
    const { listeners } = await relayWith(FLAGS);
    const client = await TcpConversation.open(listener(listeners, "tcp", "127.0.0.1").port);
    const transactionId = newTransactionId();
    client.send(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId, attributes: [] }));
    const answer = await client.receiveStun();
    expect(answer.messageClass).toBe(StunClass.SuccessResponse);
    expect(xorAddress(answer, AttributeType.XorMappedAddress)).toEqual({ family: 4, address: "127.0.0.1", port: client.socket.localPort });
  });

  it("pads ChannelData to 4 bytes on the way to the client, and reads padded ChannelData from it", async () => {
    const { relay, listeners } = await relayWith(FLAGS);
    const credential = await mint("tcp-channels");
    const client = await TcpConversation.open(listener(listeners, "tcp", "127.0.0.1").port);
    const { relayed, mapped } = await client.allocate(credential);
    expect(mapped).toEqual({ family: 4, address: "127.0.0.1", port: client.socket.localPort });
    const peer = await Peer.open("127.0.0.1");
    await permissionAndChannel(client, credential, peer.address);

    // Peer → client: every length modulo 4, each frame padded on the stream.
    for (const length of [5, 6, 7, 8, 1]) {
      const before = client.rawBytes.length;
      const payload = Buffer.alloc(length, length);
      peer.send(payload, relayed);
      const frame = await client.receive();
      expect(frame, `no ChannelData for a ${length}-byte datagram`).not.toBeNull();
      expect(frame).toEqual(channelDataFrame(CHANNEL, payload, false));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const padded = Math.ceil(length / 4) * 4;
      expect(client.rawBytes.subarray(before), `${length} bytes`).toEqual(channelDataFrame(CHANNEL, payload, true));
      expect(client.rawBytes.length - before).toBe(4 + padded);
    }

    // Client → peer: padded frames, several in one write, each delivered without its padding.
    client.send(Buffer.concat([channelDataFrame(CHANNEL, Buffer.from("abcde"), true), channelDataFrame(CHANNEL, Buffer.from("xy"), true), channelDataFrame(CHANNEL, Buffer.from("1234"), true)]));
    expect(await waitUntil(() => peer.received.length >= 3, ARRIVE_MS), "the peer did not get three datagrams").toBe(true);
    expect(peer.received.map((datagram) => datagram.data.toString())).toEqual(["abcde", "xy", "1234"]);
    expect(peer.received.every((datagram) => datagram.port === relayed.port)).toBe(true);

    // Data indications (no channel for this peer) go back as whole STUN messages on the stream.
    const other = await Peer.open("127.0.0.1");
    await client.succeed(StunMethod.CreatePermission, credential, (id) => [encodeXorAddress(AttributeType.XorPeerAddress, other.address, id)]);
    other.send(Buffer.from("odd"), relayed);
    const indication = await client.receiveStun();
    expect(indication.method).toBe(StunMethod.Data);
    expect(indication.messageClass).toBe(StunClass.Indication);
    expect(dataView(indication, findAttribute(indication, AttributeType.Data)!).toString()).toBe("odd");
    expect(relay.allocationCount).toBe(1);
  });

  it.runIf(TEST_UDP_IO === "native" && TEST_TCP_IO === "native")(
    "sends what one read of a TCP client carries to a peer together, after the read: a run to one peer leaves in one segmented send",
    async () => {
      const { listeners } = await relayWith(FLAGS);
      const credential = await mint("tcp-batched-sends");
      const client = await TcpConversation.open(listener(listeners, "tcp", "127.0.0.1").port);
      const { relayed } = await client.allocate(credential);
      const peer = await Peer.open("127.0.0.1");
      await permissionAndChannel(client, credential, peer.address);
      const segmentedBefore = nativeSendTotals().segmented;
      const routedBefore = channelRouteTotals().routedToPeers;
      // Eight frames of one size in one write: one read, eight datagrams to one peer, held until the
      // read's batch is over and then handed to the kernel as one run (udp-batch.c, UDP_SEGMENT).
      const payloads = Array.from({ length: 8 }, (_, i) => Buffer.alloc(100, i + 1));
      client.send(Buffer.concat(payloads.map((payload) => channelDataFrame(CHANNEL, payload, true))));
      expect(await waitUntil(() => peer.received.length >= 8, ARRIVE_MS), "the peer did not get eight datagrams").toBe(true);
      expect(peer.received.map((datagram) => datagram.data)).toEqual(payloads);
      expect(peer.received.every((datagram) => datagram.port === relayed.port)).toBe(true);
      expect(nativeSendTotals().segmented - segmentedBefore).toBe(8);
      // Relayed by the addon itself (channel routes), without entering JavaScript.
      expect(channelRouteTotals().routedToPeers - routedBefore).toBe(8);
    },
  );

  it("deletes the allocation when the connection closes: the count goes back to 0 and the port back to the pool", async () => {
    const { relay, listeners, events } = await relayWith(FLAGS);
    const freeBefore = relay.freePorts;
    const credential = await mint("tcp-close");
    const client = await TcpConversation.open(listener(listeners, "tcp", "127.0.0.1").port);
    const { relayed } = await client.allocate(credential);
    expect(relay.allocationCount).toBe(1);
    expect(relay.freePorts).toBe(freeBefore - 1);
    const clientKey = `tcp:127.0.0.1:${client.socket.localPort}@127.0.0.1:${client.socket.remotePort}`;
    expect(events).toContainEqual(expect.objectContaining({ event: "allocation-start", client: clientKey }));

    client.close();
    expect(await waitUntil(() => relay.allocationCount === 0, ARRIVE_MS), "the allocation outlived its connection").toBe(true);
    expect(await waitUntil(() => relay.freePorts === freeBefore, ARRIVE_MS), `free ports ${relay.freePorts}, expected ${freeBefore}`).toBe(true);
    expect(events).toContainEqual(expect.objectContaining({ event: "allocation-end", client: clientKey, user: "tcp-close", reason: "client connection closed" }));

    // The relay port is really closed: binding it again works.
    const probe = createSocket("udp4");
    opened.push({ close: () => probe.close() });
    await new Promise<void>((resolve, reject) => {
      probe.once("error", reject);
      probe.bind(relayed.port, "127.0.0.1", () => resolve());
    });
  });

  it("deletes the allocation when the client half-closes or resets, and a new connection allocates again", async () => {
    const { relay, listeners } = await relayWith(FLAGS);
    const freeBefore = relay.freePorts;
    const port = listener(listeners, "tcp", "127.0.0.1").port;
    const credential = await mint("tcp-again");
    const first = await TcpConversation.open(port);
    await first.allocate(credential);
    first.socket.end(); // FIN, not a reset
    expect(await waitUntil(() => relay.allocationCount === 0 && relay.freePorts === freeBefore, ARRIVE_MS)).toBe(true);
    expect(await waitUntil(() => first.closed, ARRIVE_MS), "the relay did not close its side").toBe(true);

    const second = await TcpConversation.open(port);
    await second.allocate(credential);
    expect(relay.allocationCount).toBe(1);
    second.socket.resetAndDestroy();
    expect(await waitUntil(() => relay.allocationCount === 0 && relay.freePorts === freeBefore, ARRIVE_MS)).toBe(true);
  });

  it("keeps a client's TCP allocation and its UDP one apart: closing the connection ends only the TCP one", async () => {
    const { relay, listeners } = await relayWith(FLAGS);
    const credential = await mint("tcp-and-udp");
    const tcp = await TcpConversation.open(listener(listeners, "tcp", "127.0.0.1").port);
    const udp = await UdpConversation.open(listener(listeners, "udp", "127.0.0.1"));
    const viaTcp = await tcp.allocate(credential);
    const viaUdp = await udp.allocate(credential);
    expect(viaTcp.relayed.port).not.toBe(viaUdp.relayed.port);
    expect(relay.allocationCount).toBe(2);
    tcp.close();
    expect(await waitUntil(() => relay.allocationCount === 1, ARRIVE_MS)).toBe(true);
    // The UDP allocation is untouched.
    await udp.succeed(StunMethod.Refresh, credential, () => []);
    expect(await udp.receive(QUIET_MS)).toBeNull();
  });
});
