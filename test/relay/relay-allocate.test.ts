/**
 * The relay's front door, over real UDP: Binding without credentials, the long-term challenge, and
 * Allocate with every way it can be refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayServer } from "../../relay/server/relay-server.js";
import {
  encodeEvenPort,
  encodeLifetime,
  encodeRequestedAddressFamily,
  encodeRequestedTransport,
  encodeText,
  readLifetime,
  readUnknownAttributes,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey, verifyMessageIntegrity, verifyMessageIntegritySha256 } from "../../relay/stun/integrity.js";
import { findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { REALM, TurnTestClient, errorCodeOf, mint, startRelay, textOf, xorAddressOf } from "./turn-client.js";

const UDP = encodeRequestedTransport(17);


function lifetime(message: StunMessage): number | undefined {
  const attribute = findAttribute(message, AttributeType.Lifetime);
  if (attribute === undefined) return undefined;
  const read = readLifetime(message, attribute);
  return read.ok ? read.value : undefined;
}

describe("the relay's front door", () => {
  let relay: RelayServer;
  let port: number;
  const clients: TurnTestClient[] = [];
  const client = async () => {
    const opened = await TurnTestClient.open(port);
    clients.push(opened);
    return opened;
  };

  beforeAll(async () => {
    ({ relay, port } = await startRelay(["--allow-loopback-peers", "--min-port=44000", "--max-port=44099"]));
  });

  afterAll(async () => {
    for (const opened of clients) opened.close();
    await relay?.stop();
  });

  describe("Binding", () => {
    it("tells the client its own address, without credentials, and no more than that", async () => {
      const c = await client();
      const request = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() });
      const { raw, message } = await c.exchange(request);
      expect(message.messageClass).toBe(StunClass.SuccessResponse);
      expect(xorAddressOf(message, AttributeType.XorMappedAddress)).toEqual({ family: 4, address: "127.0.0.1", port: c.port });
      expect(findAttribute(message, AttributeType.Software)).toBeUndefined();
      // 20-byte header + XOR-MAPPED-ADDRESS: a 20-byte request buys at most 32 bytes.
      expect(raw.length).toBe(32);
    });

    it("answers a Binding with FINGERPRINT with FINGERPRINT", async () => {
      const c = await client();
      const request = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), fingerprint: true });
      const { message } = await c.exchange(request);
      expect(message.fingerprint).toBeDefined();
    });

    it("answers an unknown comprehension-required attribute with 420 and UNKNOWN-ATTRIBUTES", async () => {
      const c = await client();
      const request = buildStunMessage({
        method: StunMethod.Binding,
        messageClass: StunClass.Request,
        transactionId: newTransactionId(),
        attributes: [{ type: 0x7777, value: Buffer.from([1, 2, 3, 4]) }, { type: 0xc001, value: Buffer.from([5]) }],
      });
      const { message } = await c.exchange(request);
      expect(errorCodeOf(message)).toBe(420);
      const unknown = readUnknownAttributes(message, findAttribute(message, AttributeType.UnknownAttributes)!);
      expect(unknown.ok && unknown.value).toEqual([0x7777]);
    });
  });

  describe("the long-term challenge", () => {
    it("answers an unsigned Allocate with 401, REALM and NONCE, and nothing signed", async () => {
      const c = await client();
      const request = buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [UDP] });
      const { message } = await c.exchange(request);
      expect(errorCodeOf(message)).toBe(401);
      expect(textOf(message, AttributeType.Realm)).toBe(REALM);
      expect(textOf(message, AttributeType.Nonce)).toMatch(/^[\x21-\x7e]{8,127}$/);
      expect(message.messageIntegrity).toBeUndefined();
      expect(relay.allocationCount).toBe(0);
    });

    it.each([
      ["a wrong password", async () => ({ ...(await mint("mallory")), password: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" })],
      ["an expired credential", async () => mint("late", 60, Math.floor(Date.now() / 1000) - 3600)],
      ["a username that is not a REST username", async () => ({ ...(await mint("x")), username: "__proto__" })],
    ])("answers 401 for %s", async (_, make) => {
      const c = await client();
      const answer = await c.request(StunMethod.Allocate, [UDP], await make());
      expect(errorCodeOf(answer)).toBe(401);
      expect(textOf(answer, AttributeType.Nonce)).toBeDefined();
      expect(relay.allocationCount).toBe(0);
    });

    it("answers 438 to a nonce another client was given, with a fresh one", async () => {
      const [a, b] = [await client(), await client()];
      const credential = await mint("bob");
      await a.signedRequest(StunMethod.Allocate, [], credential); // learns a nonce for a's address from a 401
      b.realm = a.realm;
      b.nonce = a.nonce;
      const answer = await b.request(StunMethod.Allocate, [UDP], credential);
      expect(errorCodeOf(answer)).toBe(438);
      expect(textOf(answer, AttributeType.Nonce)).not.toBe(a.nonce);
    });

    it("answers 400 to MESSAGE-INTEGRITY without USERNAME", async () => {
      const c = await client();
      const request = buildStunMessage({
        method: StunMethod.Allocate,
        messageClass: StunClass.Request,
        transactionId: newTransactionId(),
        attributes: [UDP, encodeText(AttributeType.Realm, REALM), encodeText(AttributeType.Nonce, "x")],
        messageIntegrityKey: Buffer.alloc(16),
      });
      expect(errorCodeOf((await c.exchange(request)).message)).toBe(400);
    });
  });

  describe("Allocate", () => {
    it("gives a relayed address in the port range, the default lifetime and the client's address, signed", async () => {
      const c = await client();
      const credential = await mint("carol");
      const answer = await c.request(StunMethod.Allocate, [UDP], credential);
      expect(answer.messageClass).toBe(StunClass.SuccessResponse);
      const relayed = xorAddressOf(answer, AttributeType.XorRelayedAddress)!;
      expect(relayed.address).toBe("127.0.0.1");
      expect(relayed.port).toBeGreaterThanOrEqual(44000);
      expect(relayed.port).toBeLessThanOrEqual(44099);
      expect(lifetime(answer)).toBe(600);
      expect(xorAddressOf(answer, AttributeType.XorMappedAddress)).toEqual({ family: 4, address: "127.0.0.1", port: c.port });
      expect(verifyMessageIntegrity(answer, longTermKey(credential.username, REALM, credential.password))).toBe(true);
      expect(findAttribute(answer, AttributeType.Software)).toBeUndefined();
    });

    it("answers a retransmitted Allocate with the same allocation, and a new Allocate from the same client 437", async () => {
      const c = await client();
      const credential = await mint("dave");
      const allocationsBefore = relay.allocationCount;
      const request = await c.signedRequest(StunMethod.Allocate, [UDP], credential);
      const first = await c.exchange(request);
      const again = await c.exchange(request);
      expect(again.message.messageClass).toBe(StunClass.SuccessResponse);
      expect(again.message.transactionId.equals(first.message.transactionId)).toBe(true);
      expect(xorAddressOf(again.message, AttributeType.XorRelayedAddress)).toEqual(xorAddressOf(first.message, AttributeType.XorRelayedAddress));
      expect(lifetime(again.message)).toBeGreaterThanOrEqual(lifetime(first.message)! - 1);
      expect(verifyMessageIntegrity(again.message, longTermKey(credential.username, REALM, credential.password))).toBe(true);
      expect(relay.allocationCount).toBe(allocationsBefore + 1);
      const other = await c.request(StunMethod.Allocate, [UDP], credential);
      expect(errorCodeOf(other)).toBe(437);
    });

    it("drops a copy of an Allocate that arrives after its allocation was deleted: no answer, no second allocation", async () => {
      const c = await client();
      const credential = await mint("late-copy");
      const allocationsBefore = relay.allocationCount;
      const request = await c.signedRequest(StunMethod.Allocate, [UDP], credential);
      expect((await c.exchange(request)).message.messageClass).toBe(StunClass.SuccessResponse);
      const deleted = await c.request(StunMethod.Refresh, [encodeLifetime(0)], credential);
      expect(deleted.messageClass).toBe(StunClass.SuccessResponse);
      expect(relay.allocationCount).toBe(allocationsBefore);
      // The first copy's late twin, delayed in the network.
      c.sendRaw(request);
      expect(await c.receive(500)).toBeNull();
      expect(relay.allocationCount).toBe(allocationsBefore);
      // A new transaction is a new Allocate, and gets an allocation.
      expect((await c.request(StunMethod.Allocate, [UDP], credential)).messageClass).toBe(StunClass.SuccessResponse);
      expect(relay.allocationCount).toBe(allocationsBefore + 1);
    });

    it("honours a requested lifetime", async () => {
      const c = await client();
      expect(lifetime(await c.request(StunMethod.Allocate, [UDP, encodeLifetime(120)], await mint("erin")))).toBe(120);
    });

    it("gives an even port when EVEN-PORT asks for one", async () => {
      for (let i = 0; i < 5; i++) {
        const c = await client();
        const answer = await c.request(StunMethod.Allocate, [UDP, encodeEvenPort(false)], await mint(`even${i}`));
        expect(xorAddressOf(answer, AttributeType.XorRelayedAddress)!.port % 2).toBe(0);
      }
    });

    it("gives an even port and a RESERVATION-TOKEN for the next one when EVEN-PORT sets the R bit", async () => {
      const answer = await (await client()).request(StunMethod.Allocate, [UDP, encodeEvenPort(true)], await mint("pair"));
      expect(xorAddressOf(answer, AttributeType.XorRelayedAddress)!.port % 2).toBe(0);
      expect(findAttribute(answer, AttributeType.ReservationToken)?.length).toBe(8);
    });

    it("signs with MESSAGE-INTEGRITY-SHA256 when the request did", async () => {
      const c = await client();
      const credential = await mint("sha");
      await c.signedRequest(StunMethod.Allocate, [], credential); // learns realm and nonce from a 401
      const request = buildStunMessage({
        method: StunMethod.Allocate,
        messageClass: StunClass.Request,
        transactionId: newTransactionId(),
        attributes: [UDP, encodeText(AttributeType.Username, credential.username), encodeText(AttributeType.Realm, c.realm!), encodeText(AttributeType.Nonce, c.nonce!)],
        messageIntegritySha256Key: longTermKey(credential.username, REALM, credential.password),
      });
      const { message } = await c.exchange(request);
      expect(message.messageClass).toBe(StunClass.SuccessResponse);
      expect(verifyMessageIntegritySha256(message, longTermKey(credential.username, REALM, credential.password))).toBe(true);
    });

    const refusals: [string, number, StunAttributeValue[]][] = [
      ["no REQUESTED-TRANSPORT", 400, []],
      ["TCP as the transport (until RFC 6062)", 442, [encodeRequestedTransport(6)]],
      ["DONT-FRAGMENT", 420, [UDP, { type: AttributeType.DontFragment, value: Buffer.alloc(0) }]],
      ["an IPv6 relay address from an IPv4-only relay", 440, [UDP, encodeRequestedAddressFamily(6)]],
      ["a RESERVATION-TOKEN the relay never issued", 508, [UDP, { type: AttributeType.ReservationToken, value: Buffer.alloc(8) }]],
      ["a RESERVATION-TOKEN with EVEN-PORT", 400, [UDP, encodeEvenPort(false), { type: AttributeType.ReservationToken, value: Buffer.alloc(8) }]],
    ];
    it.each(refusals)("refuses %s with %i, signed, and allocates nothing", async (_, code, attributes) => {
      const c = await client();
      const credential = await mint("frank");
      const before = relay.allocationCount;
      const answer = await c.request(StunMethod.Allocate, attributes, credential);
      expect(errorCodeOf(answer)).toBe(code);
      if (code !== 420) expect(verifyMessageIntegrity(answer, longTermKey(credential.username, REALM, credential.password))).toBe(true);
      expect(relay.allocationCount).toBe(before);
    });
  });
});
