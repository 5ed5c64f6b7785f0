/**
 * Every TURN method and the error codes a client meets, against one relay listening on UDP, TCP and
 * TLS on loopback, with our own test client over each transport in turn: the same answers whatever
 * the transport, and over TCP/TLS ChannelData padded to 4 bytes both ways (RFC 8656 §12.5).
 * Every wait is bounded.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { ListenerAddress, RelayEvent, RelayServer } from "../../relay/server/relay-server.js";
import {
  dataView,
  encodeChannelNumber,
  encodeData,
  encodeLifetime,
  encodeRequestedTransport,
  encodeXorAddress,
  readLifetime,
  readUnknownAttributes,
  readXorAddress,
  type TransportAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey, verifyMessageIntegrity } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { REALM, TEST_TCP_IO, TurnTestClient, UdpPeer, errorCodeOf, mint, startRelay, testCertificate, textOf, type ClientTransport } from "./turn-client.js";

/** Each TCP implementation's pass (TEST_TCP_IO) has a band of its own: the two projects run at once. */
const MIN_PORT = TEST_TCP_IO === "native" ? 48000 : 48200;
const MAX_PORT = MIN_PORT + 199;
const UDP = encodeRequestedTransport(17);
const LOOPBACK = "127.0.0.1";
/** In --denied-peer-ip below (and TEST-NET-2, denied by default anyway). */
const FORBIDDEN_PEER: TransportAddress = { family: 4, address: "198.51.100.1", port: 5000 };
const ARRIVE_MS = 2_000;

function xorAddress(message: StunMessage, type: number): TransportAddress | undefined {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) return undefined;
  const read = readXorAddress(message, attribute);
  return read.ok ? read.value : undefined;
}

function lifetimeOf(message: StunMessage): number | undefined {
  const attribute = findAttribute(message, AttributeType.Lifetime);
  if (attribute === undefined) return undefined;
  const read = readLifetime(message, attribute);
  return read.ok ? read.value : undefined;
}

function unknownAttributesOf(message: StunMessage): number[] | undefined {
  const attribute = findAttribute(message, AttributeType.UnknownAttributes);
  if (attribute === undefined) return undefined;
  const read = readUnknownAttributes(message, attribute);
  return read.ok ? read.value : undefined;
}

function describeAnswer(message: StunMessage): string {
  return `class ${message.messageClass}, error ${errorCodeOf(message) ?? "none"}`;
}

/** Distinct bytes, so a truncation or shift shows. */
function payloadOf(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

/** A signed request whose attributes may depend on its transaction id (XOR-PEER-ADDRESS does), and its answer. */
async function signed(client: TurnTestClient, method: number, credential: TurnCredential, attributes: (id: Buffer) => StunAttributeValue[] = () => []): Promise<StunMessage> {
  const transactionId = newTransactionId();
  const request = await client.signedRequest(method, attributes(transactionId), credential, transactionId);
  const { message } = await client.exchange(request);
  expect(message.transactionId.equals(transactionId), "the answer is for another transaction").toBe(true);
  return message;
}

function expectSignedSuccess(message: StunMessage, credential: TurnCredential): void {
  expect(message.messageClass, describeAnswer(message)).toBe(StunClass.SuccessResponse);
  expect(verifyMessageIntegrity(message, longTermKey(credential.username, REALM, credential.password))).toBe(true);
}

function expectError(message: StunMessage, code: number): void {
  expect(message.messageClass, describeAnswer(message)).toBe(StunClass.ErrorResponse);
  expect(errorCodeOf(message)).toBe(code);
}

const peerAttribute = (peer: TransportAddress) => (id: Buffer) => [encodeXorAddress(AttributeType.XorPeerAddress, peer, id)];

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  return condition();
}

describe("TURN methods over UDP, TCP and TLS", () => {
  let relay: RelayServer;
  let listeners: ListenerAddress[] = [];
  let certificate: ReturnType<typeof testCertificate> | undefined;
  const events: RelayEvent[] = [];
  const clients: TurnTestClient[] = [];
  const peers: UdpPeer[] = [];
  let users = 0;

  beforeAll(async () => {
    certificate = testCertificate();
    ({ relay } = await startRelay(
      [
        "--allow-loopback-peers",
        `--min-port=${MIN_PORT}`,
        `--max-port=${MAX_PORT}`,
        "--denied-peer-ip=198.51.100.0/24",
        ...certificate!.flags,
        "--tls-listening-port=0",
      ],
      (event) => events.push(event),
      (bound) => (listeners = bound),
    ));
    expect(listeners.map((listener) => listener.transport).sort()).toEqual(["tcp", "tls", "udp"]);
  });

  afterEach(() => {
    const errors = clients.map((client) => client.streamError).filter((error) => error !== undefined);
    for (const client of clients.splice(0)) client.close();
    for (const peer of peers.splice(0)) peer.close();
    expect(errors).toEqual([]);
  });

  afterAll(async () => {
    await relay?.stop();
    certificate?.remove();
  });

  describe.each<ClientTransport>(["udp", "tcp", "tls"])("over %s", (transport) => {
    const client = async (): Promise<TurnTestClient> => {
      const port = listeners.find((listener) => listener.transport === transport)!.port;
      const opened = transport === "udp" ? await TurnTestClient.open(port) : await TurnTestClient.openStream(port, transport);
      clients.push(opened);
      expect(opened.transport).toBe(transport);
      return opened;
    };
    const peer = async (): Promise<UdpPeer> => {
      const opened = await UdpPeer.open();
      peers.push(opened);
      return opened;
    };
    const credential = () => mint(`${transport}-user-${++users}`);

    /** A client with an allocation; returns the relayed address. */
    async function allocated(): Promise<{ c: TurnTestClient; credential: TurnCredential; relayed: TransportAddress }> {
      const c = await client();
      const cred = await credential();
      const answer = await signed(c, StunMethod.Allocate, cred, () => [UDP]);
      expectSignedSuccess(answer, cred);
      return { c, credential: cred, relayed: xorAddress(answer, AttributeType.XorRelayedAddress)! };
    }

    it("Binding: XOR-MAPPED-ADDRESS is the client's own address", async () => {
      const c = await client();
      const transactionId = newTransactionId();
      const { message } = await c.exchange(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId }));
      expect(message.messageClass).toBe(StunClass.SuccessResponse);
      expect(message.transactionId.equals(transactionId)).toBe(true);
      expect(xorAddress(message, AttributeType.XorMappedAddress)).toEqual({ family: 4, address: LOOPBACK, port: c.port });
    });

    it("420 with UNKNOWN-ATTRIBUTES for an unknown comprehension-required attribute, in a Binding and in a signed Allocate", async () => {
      const c = await client();
      const unknown = { type: 0x7777, value: Buffer.from([1, 2, 3, 4]) };
      const binding = await c.exchange(
        buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [unknown] }),
      );
      expectError(binding.message, 420);
      expect(unknownAttributesOf(binding.message)).toEqual([0x7777]);

      const cred = await credential();
      await c.signedRequest(StunMethod.Allocate, [], cred); // learns REALM and NONCE from a 401
      const allocate = await signed(c, StunMethod.Allocate, cred, () => [UDP, unknown]);
      expectError(allocate, 420);
      expect(unknownAttributesOf(allocate)).toEqual([0x7777]);
      // Nothing was allocated: a clean Allocate on the same 5-tuple still succeeds.
      expectSignedSuccess(await signed(c, StunMethod.Allocate, cred, () => [UDP]), cred);
    });

    it("401 with REALM and NONCE for an unsigned Allocate, unsigned", async () => {
      const c = await client();
      const { message } = await c.exchange(
        buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [UDP] }),
      );
      expectError(message, 401);
      expect(textOf(message, AttributeType.Realm)).toBe(REALM);
      expect(textOf(message, AttributeType.Nonce)).toMatch(/^[\x21-\x7e]{8,127}$/);
      expect(message.messageIntegrity).toBeUndefined();
    });

    it("Allocate: signed success with XOR-RELAYED-ADDRESS, LIFETIME and XOR-MAPPED-ADDRESS", async () => {
      const c = await client();
      const cred = await credential();
      const answer = await signed(c, StunMethod.Allocate, cred, () => [UDP]);
      expectSignedSuccess(answer, cred);
      const relayed = xorAddress(answer, AttributeType.XorRelayedAddress)!;
      expect(relayed.address).toBe(LOOPBACK);
      expect(relayed.port).toBeGreaterThanOrEqual(MIN_PORT);
      expect(relayed.port).toBeLessThanOrEqual(MAX_PORT);
      expect(lifetimeOf(answer)).toBe(600);
      expect(xorAddress(answer, AttributeType.XorMappedAddress)).toEqual({ family: 4, address: LOOPBACK, port: c.port });
      expect(events).toContainEqual(expect.objectContaining({ event: "allocation-start", client: `${transport}:${LOOPBACK}:${c.port}@${LOOPBACK}:${c.serverPort}` }));
    });

    it("437 for a second Allocate from the same client", async () => {
      const { c, credential: cred } = await allocated();
      expectError(await signed(c, StunMethod.Allocate, cred, () => [UDP]), 437);
    });

    it("442 for REQUESTED-TRANSPORT TCP, and nothing allocated", async () => {
      const c = await client();
      const cred = await credential();
      const answer = await signed(c, StunMethod.Allocate, cred, () => [encodeRequestedTransport(6)]);
      expectError(answer, 442);
      expect(verifyMessageIntegrity(answer, longTermKey(cred.username, REALM, cred.password))).toBe(true);
      expectError(await signed(c, StunMethod.Refresh, cred), 437);
    });

    it("CreatePermission, then a Send indication reaches the peer and its reply comes back as a Data indication", async () => {
      const { c, credential: cred, relayed } = await allocated();
      const far = await peer();
      const farAddress: TransportAddress = { family: 4, address: LOOPBACK, port: far.port };
      expectSignedSuccess(await signed(c, StunMethod.CreatePermission, cred, peerAttribute(farAddress)), cred);

      const outbound = payloadOf(33, 1);
      const sendId = newTransactionId();
      c.sendRaw(
        buildStunMessage({
          method: StunMethod.Send,
          messageClass: StunClass.Indication,
          transactionId: sendId,
          attributes: [encodeXorAddress(AttributeType.XorPeerAddress, farAddress, sendId), encodeData(outbound)],
        }),
      );
      expect(await far.waitFor(1, ARRIVE_MS), "the peer received nothing").toBe(true);
      expect(far.received[0]!.data.equals(outbound)).toBe(true);
      expect({ address: far.received[0]!.address, port: far.received[0]!.port }).toEqual({ address: relayed.address, port: relayed.port });

      const inbound = payloadOf(21, 2);
      far.send(inbound, relayed.port);
      const raw = await c.receive(ARRIVE_MS);
      expect(raw, "no Data indication").not.toBeNull();
      const decoded = decodeStunMessage(raw!);
      if (!decoded.ok) throw new Error(`not STUN: ${decoded.reason}`);
      expect(decoded.message.messageClass).toBe(StunClass.Indication);
      expect(decoded.message.method).toBe(StunMethod.Data);
      expect(xorAddress(decoded.message, AttributeType.XorPeerAddress)).toEqual(farAddress);
      const data = findAttribute(decoded.message, AttributeType.Data);
      expect(data).toBeDefined();
      expect(dataView(decoded.message, data!).equals(inbound)).toBe(true);
    });

    it("ChannelBind, then ChannelData both ways (padded to 4 bytes on TCP and TLS)", async () => {
      const { c, credential: cred, relayed } = await allocated();
      const far = await peer();
      const farAddress: TransportAddress = { family: 4, address: LOOPBACK, port: far.port };
      const channel = 0x4001;
      expectSignedSuccess(
        await signed(c, StunMethod.ChannelBind, cred, (id) => [encodeChannelNumber(channel), encodeXorAddress(AttributeType.XorPeerAddress, farAddress, id)]),
        cred,
      );

      // Client → peer: 5 bytes of data, which takes 4 + 5 + 3 bytes of padding on a stream.
      const outbound = payloadOf(5, 3);
      c.sendChannelData(channel, outbound);
      // A second one right behind it: had the relay not skipped the padding, this one would be lost or garbled.
      const outbound2 = payloadOf(6, 4);
      c.sendChannelData(channel, outbound2);
      expect(await far.waitFor(2, ARRIVE_MS), `the peer received ${far.received.length} of 2 datagrams`).toBe(true);
      expect(far.received[0]!.data.equals(outbound)).toBe(true);
      expect(far.received[1]!.data.equals(outbound2)).toBe(true);
      expect(far.received[0]!.port).toBe(relayed.port);

      // Peer → client: 7 bytes of data come back as ChannelData; on a stream with 1 byte of padding.
      const before = c.streamBytesReceived;
      const inbound = payloadOf(7, 5);
      far.send(inbound, relayed.port);
      const frame = await c.receive(ARRIVE_MS);
      expect(frame, "no ChannelData").not.toBeNull();
      expect(frame!.readUInt16BE(0)).toBe(channel);
      expect(frame!.readUInt16BE(2)).toBe(inbound.length);
      expect(frame!.subarray(4).equals(inbound)).toBe(true);
      if (c.isStream) {
        // The framer only hands over a ChannelData once its padding has arrived; the byte count shows it exactly.
        expect(c.streamBytesReceived - before).toBe(4 + 8);
      } else {
        expect(frame!.length).toBe(4 + 7); // no padding over UDP
      }

      // The channel still works after an odd-sized frame each way.
      const last = payloadOf(4, 6);
      c.sendChannelData(channel, last);
      expect(await far.waitFor(3, ARRIVE_MS)).toBe(true);
      expect(far.received[2]!.data.equals(last)).toBe(true);
    });

    it("403 for a forbidden peer, in CreatePermission and in ChannelBind", async () => {
      const { c, credential: cred } = await allocated();
      expectError(await signed(c, StunMethod.CreatePermission, cred, peerAttribute(FORBIDDEN_PEER)), 403);
      expectError(
        await signed(c, StunMethod.ChannelBind, cred, (id) => [encodeChannelNumber(0x4002), encodeXorAddress(AttributeType.XorPeerAddress, FORBIDDEN_PEER, id)]),
        403,
      );
    });

    it.each([
      ["below 0x4000", 0x3fff],
      ["above 0x7FFF", 0x8000],
    ])("400 for a channel number %s", async (_, number) => {
      const { c, credential: cred } = await allocated();
      const far = await peer();
      const value = Buffer.alloc(4);
      value.writeUInt16BE(number, 0);
      const answer = await signed(c, StunMethod.ChannelBind, cred, (id) => [
        { type: AttributeType.ChannelNumber, value },
        encodeXorAddress(AttributeType.XorPeerAddress, { family: 4, address: LOOPBACK, port: far.port }, id),
      ]);
      expectError(answer, 400);
    });

    it("Refresh with LIFETIME 0 deletes the allocation (LIFETIME 0), and a Refresh after it gets 437", async () => {
      const { c, credential: cred } = await allocated();
      const refreshed = await signed(c, StunMethod.Refresh, cred, () => [encodeLifetime(300)]);
      expectSignedSuccess(refreshed, cred);
      expect(lifetimeOf(refreshed)).toBe(300);

      const deleted = await signed(c, StunMethod.Refresh, cred, () => [encodeLifetime(0)]);
      expectSignedSuccess(deleted, cred);
      expect(lifetimeOf(deleted)).toBe(0);
      expect(events).toContainEqual(expect.objectContaining({ event: "allocation-end", client: `${transport}:${LOOPBACK}:${c.port}@${LOOPBACK}:${c.serverPort}`, reason: "deleted by the client" }));

      expectError(await signed(c, StunMethod.Refresh, cred), 437);
    });

    if (transport !== "udp") {
      it("closing the connection ends the allocation", async () => {
        const { c } = await allocated();
        const key = `${transport}:${LOOPBACK}:${c.port}@${LOOPBACK}:${c.serverPort}`;
        c.close();
        const ended = await waitUntil(
          () => events.some((event) => event.event === "allocation-end" && event.client === key && event.reason === "client connection closed"),
          ARRIVE_MS,
        );
        expect(ended, `no allocation-end for ${key}`).toBe(true);
      });
    }
  });
});
