/** Attribute readers and writers, and the decoder's promise never to throw, under random and mutated input. */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import {
  encodeChannelNumber,
  encodeEvenPort,
  encodeLifetime,
  encodeMappedAddress,
  encodeRequestedAddressFamily,
  encodeRequestedTransport,
  encodeText,
  encodeUnknownAttributes,
  encodeXorAddress,
  readChannelNumber,
  readErrorCode,
  readEvenPort,
  readLifetime,
  readMappedAddress,
  readRequestedAddressFamily,
  readRequestedTransport,
  readText,
  readUnknownAttributes,
  readXorAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, type StunAttributeValue } from "../../relay/stun/builder.js";
import { verifyFingerprint, verifyMessageIntegrity, verifyMessageIntegritySha256 } from "../../relay/stun/integrity.js";
import { decodeStunMessage, type StunMessage } from "../../relay/stun/message.js";

const RFC5769_TRANSACTION_ID = Buffer.from("b7e7a701bc34d686fa87dfae", "hex");
const KEY = Buffer.from("key");

/** Builds a one-attribute message and decodes it, so readers see exactly what the wire would carry. */
function roundTrip(attribute: StunAttributeValue, transactionId = RFC5769_TRANSACTION_ID): StunMessage {
  const result = decodeStunMessage(
    buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId, attributes: [attribute] }),
  );
  if (!result.ok) throw new Error(result.reason);
  return result.message;
}

function only(message: StunMessage) {
  const attribute = message.attributes[0];
  if (attribute === undefined) throw new Error("no attribute");
  return attribute;
}

describe("address attributes", () => {
  it("encode the RFC 5769 XOR-MAPPED-ADDRESS values byte for byte", () => {
    const v4 = encodeXorAddress(AttributeType.XorMappedAddress, { family: 4, address: "192.0.2.1", port: 32853 }, RFC5769_TRANSACTION_ID);
    expect(Buffer.from(v4.value).toString("hex")).toBe("0001a147e112a643");
    const v6 = encodeXorAddress(
      AttributeType.XorMappedAddress,
      { family: 6, address: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 },
      RFC5769_TRANSACTION_ID,
    );
    expect(Buffer.from(v6.value).toString("hex")).toBe("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9");
  });

  it("round-trip through every address form, formatting IPv6 canonically", () => {
    const cases: Array<[string, string]> = [
      ["::", "::"],
      ["::1", "::1"],
      ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["::ffff:192.0.2.128", "::ffff:c000:280"],
      ["fe80::", "fe80::"],
    ];
    for (const [input, canonical] of cases) {
      for (const type of [AttributeType.XorRelayedAddress, AttributeType.MappedAddress]) {
        const attribute =
          type === AttributeType.MappedAddress
            ? encodeMappedAddress(type, { family: 6, address: input, port: 1 })
            : encodeXorAddress(type, { family: 6, address: input, port: 1 }, RFC5769_TRANSACTION_ID);
        const message = roundTrip(attribute);
        const read = type === AttributeType.MappedAddress ? readMappedAddress : readXorAddress;
        expect(read(message, only(message))).toEqual({ ok: true, value: { family: 6, address: canonical, port: 1 } });
      }
    }
    const v4 = roundTrip(encodeMappedAddress(AttributeType.MappedAddress, { family: 4, address: "10.0.0.255", port: 65535 }));
    expect(readMappedAddress(v4, only(v4))).toEqual({ ok: true, value: { family: 4, address: "10.0.0.255", port: 65535 } });
  });

  it("reject bad families and lengths from the wire, and bad addresses from callers", () => {
    const badFamily = roundTrip({ type: AttributeType.XorPeerAddress, value: Buffer.from([0, 3, 0, 0, 1, 2, 3, 4]) });
    expect(readXorAddress(badFamily, only(badFamily))).toEqual({ ok: false, reason: expect.stringMatching(/XOR-PEER-ADDRESS has address family 0x03/) });
    const short = roundTrip({ type: AttributeType.XorPeerAddress, value: Buffer.from([0, 1, 0, 0, 1, 2]) });
    expect(readXorAddress(short, only(short))).toEqual({ ok: false, reason: expect.stringMatching(/IPv4 address is 6 bytes, expected 8/) });
    expect(() => encodeMappedAddress(AttributeType.MappedAddress, { family: 4, address: "::1", port: 1 })).toThrow(/not an IPv4 address/);
    expect(() => encodeMappedAddress(AttributeType.MappedAddress, { family: 4, address: "1.2.3.4", port: 70000 })).toThrow(/port/);
  });
});

describe("text attributes", () => {
  it("enforce the RFC 8489 limits when sending", () => {
    expect(() => encodeText(AttributeType.Realm, "r".repeat(128))).toThrow(/128 characters; at most 127/);
    expect(() => encodeText(AttributeType.Username, "u".repeat(509))).toThrow(/509 bytes/);
    expect(encodeText(AttributeType.Username, "u".repeat(508)).value.length).toBe(508);
    expect(encodeText(AttributeType.Nonce, "é".repeat(127)).value.length).toBe(254);
  });

  it("reject invalid UTF-8 and over-long values when receiving", () => {
    const bad = roundTrip({ type: AttributeType.Software, value: Buffer.from([0x66, 0xc3]) });
    expect(readText(bad, only(bad))).toEqual({ ok: false, reason: "SOFTWARE is not valid UTF-8" });
    const long = roundTrip({ type: AttributeType.Realm, value: Buffer.alloc(200, 0x61) });
    expect(readText(long, only(long))).toEqual({ ok: false, reason: "REALM has 200 characters; at most 127 are allowed" });
    const huge = roundTrip({ type: AttributeType.Username, value: Buffer.alloc(764, 0x61) });
    expect(readText(huge, only(huge))).toEqual({ ok: false, reason: "USERNAME is 764 bytes; at most 763 are accepted" });
    const username = roundTrip({ type: AttributeType.Username, value: Buffer.alloc(600, 0x61) });
    expect(readText(username, only(username)).ok).toBe(true);
  });
});

describe("TURN attributes", () => {
  it("round-trip", () => {
    let message = roundTrip(encodeLifetime(600));
    expect(readLifetime(message, only(message))).toEqual({ ok: true, value: 600 });
    message = roundTrip(encodeChannelNumber(0x4001));
    expect(readChannelNumber(message, only(message))).toEqual({ ok: true, value: 0x4001 });
    message = roundTrip(encodeRequestedTransport(17));
    expect(readRequestedTransport(message, only(message))).toEqual({ ok: true, value: 17 });
    message = roundTrip(encodeRequestedAddressFamily(6));
    expect(readRequestedAddressFamily(message, only(message))).toEqual({ ok: true, value: 6 });
    message = roundTrip(encodeEvenPort(true));
    expect(readEvenPort(message, only(message))).toEqual({ ok: true, value: { reserveNextPort: true } });
    message = roundTrip(encodeUnknownAttributes([0x7001, 0x0002, 0x0003]));
    expect(readUnknownAttributes(message, only(message))).toEqual({ ok: true, value: [0x7001, 0x0002, 0x0003] });
  });

  it("report wrong lengths and values", () => {
    const message = roundTrip({ type: AttributeType.Lifetime, value: Buffer.alloc(3) });
    expect(readLifetime(message, only(message))).toEqual({ ok: false, reason: "LIFETIME is 3 bytes, expected 4" });
    const family = roundTrip({ type: AttributeType.RequestedAddressFamily, value: Buffer.from([9, 0, 0, 0]) });
    expect(readRequestedAddressFamily(family, only(family)).ok).toBe(false);
    const error = roundTrip({ type: AttributeType.ErrorCode, value: Buffer.from([0, 0, 7, 0]) });
    expect(readErrorCode(error, only(error))).toEqual({ ok: false, reason: expect.stringMatching(/class 7/) });
    expect(() => encodeChannelNumber(0x3fff)).toThrow(/0x4000 to 0x4FFF/);
  });
});

/** Runs every reader and verifier on every attribute of a decoded message; none may throw. */
function exerciseEverything(message: StunMessage): void {
  for (const attribute of message.attributes) {
    readXorAddress(message, attribute);
    readMappedAddress(message, attribute);
    readErrorCode(message, attribute);
    readUnknownAttributes(message, attribute);
    readText(message, attribute);
    readLifetime(message, attribute);
    readChannelNumber(message, attribute);
    readRequestedTransport(message, attribute);
    readRequestedAddressFamily(message, attribute);
    readEvenPort(message, attribute);
  }
  verifyMessageIntegrity(message, KEY);
  verifyMessageIntegritySha256(message, KEY);
  verifyFingerprint(message);
}

describe("hostile input", () => {
  it("never throws on 10,000 random buffers, with or without a valid-looking header", () => {
    for (let i = 0; i < 10_000; i++) {
      const buffer = randomBytes(i % 120);
      if (i % 2 === 0 && buffer.length >= 20) {
        // Half get a plausible header so the attribute loop is actually reached.
        buffer[0] = (buffer[0] ?? 0) & 0x3f;
        buffer.writeUInt16BE(buffer.length - 20, 2);
        buffer.writeUInt32BE(0x2112a442, 4);
      }
      const result = decodeStunMessage(buffer);
      if (result.ok) exerciseEverything(result.message);
    }
  });

  it("never throws on 10,000 random mutations of a valid message, and no mutation of a signed byte passes both checks", () => {
    const valid = buildStunMessage({
      method: StunMethod.Allocate,
      messageClass: StunClass.Request,
      transactionId: RFC5769_TRANSACTION_ID,
      attributes: [
        encodeText(AttributeType.Username, "alice"),
        encodeXorAddress(AttributeType.XorPeerAddress, { family: 6, address: "2001:db8::7", port: 9 }, RFC5769_TRANSACTION_ID),
        encodeLifetime(600),
        encodeRequestedTransport(17),
      ],
      messageIntegrityKey: KEY,
      messageIntegritySha256Key: KEY,
      fingerprint: true,
    });
    for (let i = 0; i < 10_000; i++) {
      const mutated = Buffer.from(valid);
      const edits = 1 + (i % 4);
      for (let e = 0; e < edits; e++) {
        const position = Math.floor(Math.random() * mutated.length);
        mutated[position] = Math.floor(Math.random() * 256);
      }
      const cut = i % 5 === 0 ? mutated.subarray(0, Math.floor(Math.random() * mutated.length)) : mutated;
      const result = decodeStunMessage(cut);
      if (!result.ok) continue;
      exerciseEverything(result.message);
      if (!cut.equals(valid)) {
        // A changed message must not pass every check it carries: the CRC or an HMAC catches it.
        const allPass =
          verifyMessageIntegrity(result.message, KEY) && verifyMessageIntegritySha256(result.message, KEY) && verifyFingerprint(result.message);
        expect(allPass).toBe(false);
      }
    }
  });
});
