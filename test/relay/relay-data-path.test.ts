/**
 * The relay's data path, as a specification (RFC 8656 §9-§12), with real UDP sockets on 127.0.0.1:
 * permissions gate both directions per peer IP, Send and Data indications carry payloads byte for
 * byte, channels carry them as ChannelData, the channel rebinding rules hold, and forbidden or
 * wrong-family peers are refused. Every wait is bounded; "nothing arrives" means nothing within
 * QUIET_MS on loopback.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Allocation } from "../../relay/allocation/allocation.js";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { ListenerAddress, RelayServer } from "../../relay/server/relay-server.js";
import {
  dataView,
  encodeRequestedAddressFamily,
  encodeRequestedTransport,
  encodeXorAddress,
  readXorAddress,
  type TransportAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey, verifyMessageIntegrity } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { channelRouteTotals } from "../../relay/transport/udp-socket.js";
import { TEST_UDP_IO, TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, startRelay, textOf } from "./turn-client.js";

/**
 * This file's relay ports: 36000-36399 on the native addon, 37000-37399 on dgram (the node-dgram
 * project runs it again, possibly beside the node project's run), which no other suite uses.
 */
const PORT_BASE = TEST_UDP_IO === "native" ? 36_000 : 37_000;

/** How long a datagram that must not arrive is waited for. */
const QUIET_MS = 300;
/** How long a datagram that must arrive is waited for. */
const ARRIVE_MS = 2_000;
const LOOPBACK = "127.0.0.1";
const CHANNEL = 0x4000;

// ---------------------------------------------------------------------------------------------------
// Sockets opened by a test, closed after it.

const openClients: TurnTestClient[] = [];
const openPeers: UdpPeer[] = [];
const openSockets: Socket[] = [];

async function openClient(port: number): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(port);
  openClients.push(client);
  return client;
}

async function openPeer(): Promise<UdpPeer> {
  const peer = await UdpPeer.open();
  openPeers.push(peer);
  return peer;
}

afterEach(() => {
  for (const client of openClients.splice(0)) client.close();
  for (const peer of openPeers.splice(0)) peer.close();
  for (const socket of openSockets.splice(0)) socket.close();
});

/** A far peer on ::1 (UdpPeer is IPv4 only). */
async function openIpv6Peer(): Promise<{ socket: Socket; port: number; received: { data: Buffer; address: string; port: number }[] }> {
  const socket = createSocket({ type: "udp6", ipv6Only: true });
  openSockets.push(socket);
  const received: { data: Buffer; address: string; port: number }[] = [];
  socket.on("message", (data, from) => received.push({ data, address: from.address, port: from.port }));
  await new Promise<void>((resolve) => socket.bind(0, "::1", resolve));
  return { socket, port: socket.address().port, received };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  return condition();
}

/**
 * Records what the relay throws out of an allocation's socket handlers instead of letting it escape.
 * In the relay process such a throw is an uncaught exception: it ends the process and every
 * allocation on it. Wraps the relay socket's datagram handler (peer → client) and `toPeer`
 * (client → peer, reached from the listener socket's handler).
 */
function trapThrows(allocation: Allocation): unknown[] {
  const thrown: unknown[] = [];
  const toPeer = allocation.toPeer.bind(allocation);
  allocation.toPeer = (...args) => {
    try {
      toPeer(...args);
    } catch (error) {
      thrown.push(error);
    }
  };
  const socket = allocation.relaySocket;
  const receiver = socket.receiver!;
  socket.receiver = {
    receiveDatagram: (...args) => {
      try {
        receiver.receiveDatagram(...args);
      } catch (error) {
        thrown.push(error);
      }
    },
  };
  return thrown;
}

/** The relay's allocation for this UDP client (from 127.0.0.1), whichever listener it came through. */
function allocationOf(relay: RelayServer, client: TurnTestClient) {
  return [...relay.table.values()].find((allocation) => allocation.client.transport === "udp" && allocation.client.address.address === LOOPBACK && allocation.client.address.port === client.port);
}

// ---------------------------------------------------------------------------------------------------
// Requests and their checks.

function peerAt(port: number, address = LOOPBACK): TransportAddress {
  return { family: address.includes(":") ? 6 : 4, address, port };
}

/** A signed request whose attributes may need its transaction id (XOR-PEER-ADDRESS does). */
async function signed(
  client: TurnTestClient,
  method: number,
  credential: TurnCredential,
  attributes: (transactionId: Buffer) => StunAttributeValue[],
): Promise<StunMessage> {
  const transactionId = newTransactionId();
  const bytes = await client.signedRequest(method, attributes(transactionId), credential, transactionId);
  const { message } = await client.exchange(bytes);
  expect(message.method).toBe(method);
  expect(message.transactionId.equals(transactionId)).toBe(true);
  return message;
}

function xorPeers(peers: TransportAddress[]): (transactionId: Buffer) => StunAttributeValue[] {
  return (transactionId) => peers.map((peer) => encodeXorAddress(AttributeType.XorPeerAddress, peer, transactionId));
}

/** A CHANNEL-NUMBER written by hand, so numbers outside 0x4000-0x4FFF can be sent. */
function rawChannelNumber(channel: number): StunAttributeValue {
  const value = Buffer.alloc(4);
  value.writeUInt16BE(channel, 0);
  return { type: AttributeType.ChannelNumber, value };
}

function createPermission(client: TurnTestClient, credential: TurnCredential, peers: TransportAddress[]): Promise<StunMessage> {
  return signed(client, StunMethod.CreatePermission, credential, xorPeers(peers));
}

function channelBind(client: TurnTestClient, credential: TurnCredential, channel: number, peer: TransportAddress): Promise<StunMessage> {
  return signed(client, StunMethod.ChannelBind, credential, (id) => [rawChannelNumber(channel), ...xorPeers([peer])(id)]);
}

/**
 * A success response to an authenticated request: MESSAGE-INTEGRITY verifies under the long-term
 * key of the credential and the realm the relay announced, and no SOFTWARE attribute (the relay
 * runs without --software).
 */
function expectSignedSuccess(message: StunMessage, client: TurnTestClient, credential: TurnCredential): void {
  const detail = `code ${errorCodeOf(message)} ${textOf(message, AttributeType.ErrorCode) ?? ""}`;
  expect(message.messageClass, detail).toBe(StunClass.SuccessResponse);
  expect(client.realm).toBeDefined();
  expect(message.messageIntegrity).toBeDefined();
  expect(verifyMessageIntegrity(message, longTermKey(credential.username, client.realm!, credential.password))).toBe(true);
  expect(findAttribute(message, AttributeType.Software)).toBeUndefined();
}

function expectError(message: StunMessage, code: number): void {
  expect(message.messageClass).toBe(StunClass.ErrorResponse);
  expect(errorCodeOf(message)).toBe(code);
}

/** Allocates (UDP) and returns the XOR-RELAYED-ADDRESS. */
async function allocate(client: TurnTestClient, credential: TurnCredential, family: 4 | 6 = 4): Promise<TransportAddress> {
  const response = await signed(client, StunMethod.Allocate, credential, () =>
    family === 4 ? [encodeRequestedTransport(17)] : [encodeRequestedTransport(17), encodeRequestedAddressFamily(6)],
  );
  expectSignedSuccess(response, client, credential);
  const relayed = findAttribute(response, AttributeType.XorRelayedAddress);
  expect(relayed).toBeDefined();
  const read = readXorAddress(response, relayed!);
  if (!read.ok) throw new Error(read.reason);
  expect(read.value.family).toBe(family);
  expect(read.value.address).toBe(family === 4 ? LOOPBACK : "::1");
  return read.value;
}

// ---------------------------------------------------------------------------------------------------
// Data path messages.


/** ChannelData over UDP: channel, length, data, no padding. */
function channelData(channel: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16BE(channel, 0);
  header.writeUInt16BE(payload.length, 2);
  return Buffer.concat([header, payload]);
}

/** The next datagram to the client, which must be a Data indication; returns its peer and data. */
async function nextDataIndication(client: TurnTestClient): Promise<{ peer: TransportAddress; data: Buffer }> {
  const raw = await client.receive(ARRIVE_MS);
  if (raw === null) throw new Error(`no Data indication within ${ARRIVE_MS} ms`);
  const decoded = decodeStunMessage(raw);
  if (!decoded.ok) throw new Error(`expected a Data indication, got undecodable bytes (${decoded.reason}): ${raw.subarray(0, 8).toString("hex")}`);
  const message = decoded.message;
  expect(message.messageClass).toBe(StunClass.Indication);
  expect(message.method).toBe(StunMethod.Data);
  const peerAttribute = findAttribute(message, AttributeType.XorPeerAddress);
  const dataAttribute = findAttribute(message, AttributeType.Data);
  expect(peerAttribute).toBeDefined();
  expect(dataAttribute).toBeDefined();
  const peer = readXorAddress(message, peerAttribute!);
  if (!peer.ok) throw new Error(peer.reason);
  return { peer: peer.value, data: Buffer.from(dataView(message, dataAttribute!)) };
}

/** The next datagram to the client, which must be ChannelData; returns its channel, data and size. */
async function nextChannelData(client: TurnTestClient): Promise<{ channel: number; data: Buffer; datagramLength: number }> {
  const raw = await client.receive(ARRIVE_MS);
  if (raw === null) throw new Error(`no ChannelData within ${ARRIVE_MS} ms`);
  expect(raw.length).toBeGreaterThanOrEqual(4);
  expect(raw[0]! >= 0x40 && raw[0]! <= 0x7f, `first byte 0x${raw[0]!.toString(16)} does not start ChannelData`).toBe(true);
  const length = raw.readUInt16BE(2);
  expect(4 + length).toBeLessThanOrEqual(raw.length);
  return { channel: raw.readUInt16BE(0), data: Buffer.from(raw.subarray(4, 4 + length)), datagramLength: raw.length };
}

/** The one datagram the peer received since `before`, which must come from the relayed address. */
async function expectAtPeer(peer: UdpPeer, before: number, payload: Buffer, relayed: TransportAddress): Promise<void> {
  expect(await peer.waitFor(before + 1, ARRIVE_MS), "the peer received nothing").toBe(true);
  const got = peer.received[before]!;
  expect(got.data.equals(payload), `peer got ${got.data.length} bytes, expected ${payload.length}`).toBe(true);
  expect(got.address).toBe(relayed.address);
  expect(got.port).toBe(relayed.port);
}

async function expectNothingAtPeer(peer: UdpPeer, before: number): Promise<void> {
  expect(await peer.waitFor(before + 1, QUIET_MS), "the peer received a datagram it should not have").toBe(false);
}

async function expectNothingAtClient(client: TurnTestClient): Promise<void> {
  const got = await client.receive(QUIET_MS);
  expect(got, `the client received ${got?.length} bytes it should not have`).toBeNull();
}

/** Distinct bytes, so a truncation or shift shows. */
function payloadOf(length: number, seed = 1): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

/** An unauthenticated Binding request is still answered: the relay is alive. */
async function expectRelayAlive(client: TurnTestClient): Promise<void> {
  const transactionId = newTransactionId();
  const { message } = await client.exchange(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId }));
  expect(message.method).toBe(StunMethod.Binding);
  expect(message.messageClass).toBe(StunClass.SuccessResponse);
  expect(message.transactionId.equals(transactionId)).toBe(true);
}

// ---------------------------------------------------------------------------------------------------

describe("relay data path (loopback peers allowed)", () => {
  let relay: RelayServer;
  let port: number;

  beforeAll(async () => {
    ({ relay, port } = await startRelay(["--allow-loopback-peers", `--min-port=${PORT_BASE}`, `--max-port=${PORT_BASE + 99}`]));
  });

  afterAll(async () => {
    await relay?.stop();
  });

  /** A client with an allocation, and its relayed address. */
  async function allocated(user = "alice"): Promise<{ client: TurnTestClient; credential: TurnCredential; relayed: TransportAddress }> {
    const client = await openClient(port);
    const credential = await mint(user);
    const relayed = await allocate(client, credential);
    return { client, credential, relayed };
  }

  describe("1. without a permission nothing passes", () => {
    it("drops a Send indication to an unpermitted peer", async () => {
      const { client } = await allocated();
      const peer = await openPeer();
      client.sendRaw(sendIndication(peerAt(peer.port), Buffer.from("should not arrive")));
      await expectNothingAtPeer(peer, 0);
    });

    it("drops a datagram from an unpermitted peer to the relayed address", async () => {
      const { client, relayed } = await allocated();
      const peer = await openPeer();
      peer.send(Buffer.from("should not arrive"), relayed.port);
      await expectNothingAtClient(client);
      expect(relay.allocationCount).toBeGreaterThanOrEqual(1);
    });
  });

  describe("2. CreatePermission, Send and Data indications", () => {
    it("permits two peers in one request; each gets the exact bytes from the relayed address and answers in a Data indication", async () => {
      const { client, credential, relayed } = await allocated();
      const peerA = await openPeer();
      const peerB = await openPeer();
      const response = await createPermission(client, credential, [peerAt(peerA.port), peerAt(peerB.port)]);
      expectSignedSuccess(response, client, credential);

      for (const [index, peer] of [peerA, peerB].entries()) {
        const outbound = Buffer.from(`hello peer ${index}`);
        client.sendRaw(sendIndication(peerAt(peer.port), outbound));
        await expectAtPeer(peer, 0, outbound, relayed);

        const reply = Buffer.from(`reply from peer ${index}`);
        peer.send(reply, relayed.port);
        const indication = await nextDataIndication(client);
        expect(indication.peer).toEqual(peerAt(peer.port));
        expect(indication.data.equals(reply)).toBe(true);
      }
    });

    it("answers nothing to a Send indication (indications get no response)", async () => {
      const { client, credential } = await allocated();
      const peer = await openPeer();
      expectSignedSuccess(await createPermission(client, credential, [peerAt(peer.port)]), client, credential);
      client.sendRaw(sendIndication(peerAt(peer.port), Buffer.from("x")));
      expect(await peer.waitFor(1, ARRIVE_MS)).toBe(true);
      await expectNothingAtClient(client);
    });
  });

  describe("3. permissions are per IP address, not per port", () => {
    it("lets another port of a permitted IP send to the client and be sent to", async () => {
      const { client, credential, relayed } = await allocated();
      const permitted = await openPeer();
      const otherPort = await openPeer();
      expect(otherPort.port).not.toBe(permitted.port);
      expectSignedSuccess(await createPermission(client, credential, [peerAt(permitted.port)]), client, credential);

      const inbound = Buffer.from("from another port of 127.0.0.1");
      otherPort.send(inbound, relayed.port);
      const indication = await nextDataIndication(client);
      expect(indication.peer).toEqual(peerAt(otherPort.port));
      expect(indication.data.equals(inbound)).toBe(true);

      const outbound = Buffer.from("to another port of 127.0.0.1");
      client.sendRaw(sendIndication(peerAt(otherPort.port), outbound));
      await expectAtPeer(otherPort, 0, outbound, relayed);
    });
  });

  describe("4. channels and ChannelData", () => {
    it("binds 0x4000; ChannelData goes to the peer exactly and the peer's reply comes back as ChannelData", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);

      const outbound = payloadOf(5, 3); // 5 bytes: not a multiple of 4, so missing padding matters
      client.sendRaw(channelData(CHANNEL, outbound));
      await expectAtPeer(peer, 0, outbound, relayed);

      const reply = payloadOf(7, 9);
      peer.send(reply, relayed.port);
      const got = await nextChannelData(client);
      expect(got.channel).toBe(CHANNEL);
      expect(got.data.equals(reply)).toBe(true);
      // Over UDP the relay sends ChannelData unpadded (relay/transport/udp.ts).
      expect(got.datagramLength).toBe(4 + reply.length);
    });

    it("relays a bound channel without JavaScript on the native addon (channel routes), on dgram through JavaScript, byte for byte either way", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      const before = channelRouteTotals();
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);
      const routed = TEST_UDP_IO === "native" ? 1 : 0;
      expect(channelRouteTotals().routes - before.routes).toBe(routed);
      for (let i = 0; i < 3; i++) client.sendRaw(channelData(CHANNEL, payloadOf(10 + i, i)));
      for (let i = 0; i < 3; i++) await expectAtPeer(peer, i, payloadOf(10 + i, i), relayed);
      for (let i = 0; i < 2; i++) {
        peer.send(payloadOf(20 + i, i), relayed.port);
        const got = await nextChannelData(client);
        expect([got.channel, got.data.equals(payloadOf(20 + i, i))]).toEqual([CHANNEL, true]);
      }
      const after = channelRouteTotals();
      expect([after.routedToPeers - before.routedToPeers, after.routedToClients - before.routedToClients]).toEqual([3 * routed, 2 * routed]);
    });

    it("ChannelBind also installs the permission: a Send indication to the bound peer's IP passes", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);
      const outbound = Buffer.from("send, not channel");
      client.sendRaw(sendIndication(peerAt(peer.port), outbound));
      await expectAtPeer(peer, 0, outbound, relayed);
    });

    it("relays only `length` bytes of a padded ChannelData message", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);
      const payload = Buffer.from([0xaa, 0xbb, 0xcc]);
      client.sendRaw(Buffer.concat([channelData(CHANNEL, payload), Buffer.from([0])]));
      await expectAtPeer(peer, 0, payload, relayed);
    });

    it("drops ChannelData whose length field exceeds the datagram, and ChannelData on an unbound channel", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);

      const overlong = channelData(CHANNEL, Buffer.from("abcd"));
      overlong.writeUInt16BE(100, 2); // claims 100 bytes, carries 4
      client.sendRaw(overlong);
      await expectNothingAtPeer(peer, 0);

      client.sendRaw(channelData(0x4001, Buffer.from("unbound channel")));
      await expectNothingAtPeer(peer, 0);

      // The relay is still fine, and the dropped ones were not merely late.
      const good = Buffer.from("the good one");
      client.sendRaw(channelData(CHANNEL, good));
      await expectAtPeer(peer, 0, good, relayed);
      await expectNothingAtPeer(peer, 1);
      expect(peer.received).toHaveLength(1);
    });
  });

  describe("5. channel rebinding rules", () => {
    it("refreshes a binding to the same peer and refuses every conflicting or out-of-range binding with 400", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      const other = await openPeer();

      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);
      // Same channel, same peer: a refresh.
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(peer.port)), client, credential);
      // The channel belongs to another peer transport address (same IP, other port).
      expectError(await channelBind(client, credential, CHANNEL, peerAt(other.port)), 400);
      // The peer is already bound to another channel.
      expectError(await channelBind(client, credential, CHANNEL + 1, peerAt(peer.port)), 400);
      // Out of range on either side.
      expectError(await channelBind(client, credential, 0x3fff, peerAt(other.port)), 400);
      expectError(await channelBind(client, credential, 0x8000, peerAt(other.port)), 400);

      // The refused requests changed nothing: 0x4000 still goes to the first peer, both ways.
      const outbound = Buffer.from("still bound");
      client.sendRaw(channelData(CHANNEL, outbound));
      await expectAtPeer(peer, 0, outbound, relayed);
      expect(other.received).toHaveLength(0);
      const reply = Buffer.from("still bound back");
      peer.send(reply, relayed.port);
      const got = await nextChannelData(client);
      expect(got.channel).toBe(CHANNEL);
      expect(got.data.equals(reply)).toBe(true);
    });
  });

  describe("6. peer address family", () => {
    it("answers 443 to IPv6 peers on an IPv4 allocation, for CreatePermission and ChannelBind", async () => {
      const { client, credential } = await allocated();
      expectError(await createPermission(client, credential, [peerAt(9, "::1")]), 443);
      expectError(await createPermission(client, credential, [peerAt(9, "2001:db8::1")]), 443);
      expectError(await channelBind(client, credential, CHANNEL, peerAt(9, "::1")), 443);
    });

    it("installs nothing when one of the peers in a CreatePermission is refused (all or nothing)", async () => {
      const { client, credential } = await allocated();
      const peer = await openPeer();
      expectError(await createPermission(client, credential, [peerAt(peer.port), peerAt(9, "10.0.0.1")]), 403);
      client.sendRaw(sendIndication(peerAt(peer.port), Buffer.from("should not arrive")));
      await expectNothingAtPeer(peer, 0);
    });
  });

  describe("7. signed success responses", () => {
    it("signs Allocate, CreatePermission, ChannelBind and Refresh successes with the long-term key, without SOFTWARE", async () => {
      const client = await openClient(port);
      const credential = await mint("bob");
      await allocate(client, credential); // checks the Allocate success itself
      const peer = await openPeer();
      const responses = [
        await createPermission(client, credential, [peerAt(peer.port)]),
        await channelBind(client, credential, CHANNEL, peerAt(peer.port)),
        await channelBind(client, credential, CHANNEL, peerAt(peer.port)),
        await signed(client, StunMethod.Refresh, credential, () => []),
      ];
      for (const response of responses) expectSignedSuccess(response, client, credential);
      // A key from another password does not verify: the check above means something.
      const wrong = longTermKey(credential.username, client.realm!, `${credential.password}x`);
      for (const response of responses) expect(verifyMessageIntegrity(response, wrong)).toBe(false);
    });
  });

  describe("8. payload sizes", () => {
    it("relays 1-byte and 1200-byte payloads intact both ways, in indications and on a channel", async () => {
      const { client, credential, relayed } = await allocated();
      const viaIndication = await openPeer();
      const viaChannel = await openPeer();
      expectSignedSuccess(await createPermission(client, credential, [peerAt(viaIndication.port)]), client, credential);
      expectSignedSuccess(await channelBind(client, credential, CHANNEL, peerAt(viaChannel.port)), client, credential);

      for (const [index, size] of [1, 1200].entries()) {
        const outbound = payloadOf(size, 11 + index);
        const inbound = payloadOf(size, 51 + index);

        client.sendRaw(sendIndication(peerAt(viaIndication.port), outbound));
        await expectAtPeer(viaIndication, index, outbound, relayed);
        viaIndication.send(inbound, relayed.port);
        const indication = await nextDataIndication(client);
        expect(indication.peer).toEqual(peerAt(viaIndication.port));
        expect(indication.data.equals(inbound), `Data indication of ${size} bytes`).toBe(true);

        client.sendRaw(channelData(CHANNEL, outbound));
        await expectAtPeer(viaChannel, index, outbound, relayed);
        viaChannel.send(inbound, relayed.port);
        const got = await nextChannelData(client);
        expect(got.channel).toBe(CHANNEL);
        expect(got.data.equals(inbound), `ChannelData of ${size} bytes`).toBe(true);
      }
    });

    it("survives a 1-byte datagram from a permitted peer (and an empty one from the client) and still answers Binding", async () => {
      const { client, credential, relayed } = await allocated();
      const peer = await openPeer();
      expectSignedSuccess(await createPermission(client, credential, [peerAt(peer.port)]), client, credential);

      peer.send(Buffer.from([0x00]), relayed.port);
      const indication = await nextDataIndication(client);
      expect(indication.data.equals(Buffer.from([0x00]))).toBe(true);

      client.sendRaw(Buffer.alloc(0));
      client.sendRaw(Buffer.from([0x40])); // a lone ChannelData first byte: too short for the header
      await expectRelayAlive(client);
    });
  });

  describe("9. peer port 0 from an authenticated client", () => {
    // Regression: port 0 once reached dgram's send(), which throws ERR_SOCKET_BAD_PORT synchronously
    // inside the listener's "message" handler: an uncaught exception that ended the relay process.
    it("drops a Send indication to port 0 of a permitted IP instead of throwing", async () => {
      const { client, credential } = await allocated();
      const peer = await openPeer();
      const allocation = allocationOf(relay, client);
      expect(allocation).toBeDefined();
      const thrown = trapThrows(allocation!);
      expectSignedSuccess(await createPermission(client, credential, [peerAt(peer.port)]), client, credential);

      client.sendRaw(sendIndication(peerAt(0), Buffer.from("to port zero")));
      await expectRelayAlive(client);
      expect(thrown.map(String), "the relay threw out of its socket handler (an uncaught exception in the relay process)").toEqual([]);
    });

    // Regression: ChannelBind once bound port 0, and ChannelData on that channel then threw.
    it("refuses ChannelBind to port 0, or at least drops ChannelData on such a channel instead of throwing", async () => {
      const { client, credential } = await allocated();
      const allocation = allocationOf(relay, client);
      expect(allocation).toBeDefined();
      const thrown = trapThrows(allocation!);
      const bound = await channelBind(client, credential, CHANNEL, peerAt(0));
      if (bound.messageClass === StunClass.SuccessResponse) {
        client.sendRaw(channelData(CHANNEL, Buffer.from("to port zero")));
      } else {
        expectError(bound, 400);
      }
      await expectRelayAlive(client);
      expect(thrown.map(String), "the relay threw out of its socket handler (an uncaught exception in the relay process)").toEqual([]);
    });
  });
});

describe("relay data path: peers the relay refuses (no --allow-loopback-peers)", () => {
  let relay: RelayServer;
  let port: number;

  beforeAll(async () => {
    ({ relay, port } = await startRelay([`--min-port=${PORT_BASE + 100}`, `--max-port=${PORT_BASE + 199}`]));
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("answers 403 to CreatePermission for loopback, private and link-local (metadata) peers, and to ChannelBind to loopback", async () => {
    const client = await openClient(port);
    const credential = await mint("carol");
    await allocate(client, credential);
    for (const address of [LOOPBACK, "10.0.0.1", "169.254.169.254"]) {
      const response = await createPermission(client, credential, [peerAt(3478, address)]);
      expectError(response, 403);
    }
    expectError(await channelBind(client, credential, CHANNEL, peerAt(3478, LOOPBACK)), 403);
  });

  it("answers 443 (not 403) to IPv6 peers on an IPv4 allocation", async () => {
    const client = await openClient(port);
    const credential = await mint("carol");
    await allocate(client, credential);
    expectError(await createPermission(client, credential, [peerAt(3478, "::1")]), 443);
    expectError(await createPermission(client, credential, [peerAt(3478, "2001:db8::1")]), 443);
  });

  it("still relays nothing from a loopback peer, which could not be permitted", async () => {
    const client = await openClient(port);
    const credential = await mint("carol");
    const relayed = await allocate(client, credential);
    const peer = await openPeer();
    expectError(await createPermission(client, credential, [peerAt(peer.port)]), 403);
    peer.send(Buffer.from("should not arrive"), relayed.port);
    await expectNothingAtClient(client);
  });
});

describe("relay data path: IPv6 allocations", () => {
  let relay: RelayServer;
  let port: number;

  beforeAll(async () => {
    ({ relay, port } = await startRelay([
      "--allow-loopback-peers",
      "--relay-ip=127.0.0.1",
      "--relay-ip=::1",
      `--min-port=${PORT_BASE + 200}`,
      `--max-port=${PORT_BASE + 299}`,
    ]));
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("relays 1200 bytes both ways between a client and an IPv6 peer", async () => {
    const client = await openClient(port);
    const credential = await mint("dave");
    const relayed = await allocate(client, credential, 6);
    const peer = await openIpv6Peer();
    expectSignedSuccess(await createPermission(client, credential, [peerAt(peer.port, "::1")]), client, credential);

    const outbound = payloadOf(1200, 5);
    client.sendRaw(sendIndication(peerAt(peer.port, "::1"), outbound));
    expect(await waitUntil(() => peer.received.length > 0, ARRIVE_MS)).toBe(true);
    expect(peer.received[0]!.data.equals(outbound)).toBe(true);
    expect(peer.received[0]!.port).toBe(relayed.port);

    const inbound = payloadOf(1200, 6);
    peer.socket.send(inbound, relayed.port, "::1");
    const indication = await nextDataIndication(client);
    expect(indication.peer).toEqual(peerAt(peer.port, "::1"));
    expect(indication.data.equals(inbound)).toBe(true);
  });

  // Regression: a Data indication for an IPv6 peer has 24 bytes of XOR-PEER-ADDRESS, so a datagram
  // of 65505 bytes or more makes a body over 65535; building it once threw inside the relay socket's
  // "message" handler and ended the process. Such a datagram cannot be carried and is dropped.
  it("drops a datagram from a permitted IPv6 peer too big for a Data indication instead of throwing", async () => {
    const client = await openClient(port);
    const credential = await mint("dave");
    const relayed = await allocate(client, credential, 6);
    const peer = await openIpv6Peer();
    const allocation = allocationOf(relay, client);
    expect(allocation).toBeDefined();
    const thrown = trapThrows(allocation!);
    expectSignedSuccess(await createPermission(client, credential, [peerAt(peer.port, "::1")]), client, credential);

    const sent = new Promise<Error | null>((resolve) => peer.socket.send(Buffer.alloc(65507, 0x5a), relayed.port, "::1", resolve));
    expect(await sent).toBeNull();
    // Then an ordinary datagram still comes through, after the big one.
    const small = Buffer.from("after the big one");
    peer.socket.send(small, relayed.port, "::1");
    const indication = await nextDataIndication(client);
    expect(indication.data.equals(small)).toBe(true);
    await expectRelayAlive(client);
    expect(thrown.map(String), "the relay threw out of its socket handler (an uncaught exception in the relay process)").toEqual([]);
  });
});

describe("relay data path: the relay's own listeners are no peers", () => {
  let relay: RelayServer;
  let port: number;

  beforeAll(async () => {
    ({ relay, port } = await startRelay(["--allow-loopback-peers", `--min-port=${PORT_BASE + 300}`, `--max-port=${PORT_BASE + 399}`]));
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("refuses ChannelBind to its own listener with 403", async () => {
    const client = await openClient(port);
    const credential = await mint("self-bind");
    await allocate(client, credential);
    expectError(await channelBind(client, credential, CHANNEL, peerAt(port)), 403);
  });

  it.each([
    ["IPv6 loopback written in full", "0:0:0:0:0:0:0:1", "::1"],
    ["IPv6 loopback with leading zeros", "0000:0000::0001", "::1"],
  ])("refuses ChannelBind to its own listener given as %s (%s)", async (_name, listeningIp, peerIp) => {
    // A second listener, besides the helper's 127.0.0.1: the client talks to that one and binds to this one.
    let listeners: ListenerAddress[] = [];
    const spelled = await startRelay([`--listening-ip=${listeningIp}`, "--relay-ip=127.0.0.1", "--relay-ip=::1", "--allow-loopback-peers", `--min-port=${PORT_BASE + 300}`, `--max-port=${PORT_BASE + 399}`], undefined, (bound) => {
      listeners = bound;
    });
    try {
      const own = listeners.find((listener) => listener.transport === "udp" && listener.address.includes(":"))!;
      const client = await openClient(spelled.port);
      const credential = await mint("self-spelled");
      await allocate(client, credential, 6);
      expectError(await channelBind(client, credential, CHANNEL, peerAt(own.port, peerIp)), 403);
    } finally {
      await spelled.relay.stop();
    }
  });

  it("refuses ChannelBind to any loopback address of a wildcard (0.0.0.0) listener", async () => {
    let listeners: ListenerAddress[] = [];
    const wildcard = await startRelay(["--listening-ip=0.0.0.0", "--relay-ip=127.0.0.1", "--allow-loopback-peers", `--min-port=${PORT_BASE + 300}`, `--max-port=${PORT_BASE + 399}`], undefined, (bound) => {
      listeners = bound;
    });
    try {
      const own = listeners.find((listener) => listener.transport === "udp" && listener.address === "0.0.0.0")!;
      const client = await openClient(wildcard.port);
      const credential = await mint("self-wildcard");
      await allocate(client, credential);
      // 127.0.0.2 is no interface address, yet a datagram to it reaches a 0.0.0.0 listener.
      for (const ip of ["127.0.0.1", "127.0.0.2", "0.0.0.0"]) expectError(await channelBind(client, credential, CHANNEL, peerAt(own.port, ip)), 403);
    } finally {
      await wildcard.relay.stop();
    }
  });

  it("drops a Send indication to its own listener, so no answer comes back through the relay", async () => {
    const client = await openClient(port);
    const credential = await mint("self-send");
    await allocate(client, credential);
    expectSignedSuccess(await createPermission(client, credential, [peerAt(port)]), client, credential);
    // A Binding request bounced off the relay's own listener would come back as a Data indication.
    const binding = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() });
    client.sendRaw(sendIndication(peerAt(port), binding));
    expect(await client.receive(QUIET_MS)).toBeNull();
  });
});
