/** Building and decoding STUN messages: round trips, integrity checks, the decoder's framing rules, demultiplexing. */
import { describe, expect, it } from "vitest";
import {
  AttributeType,
  StunClass,
  StunMethod,
  classOfMessageType,
  methodOfMessageType,
  stunMessageType,
} from "../../relay/stun/constants.js";
import {
  dataView,
  encodeData,
  encodeErrorCode,
  encodeText,
  encodeXorAddress,
  readErrorCode,
  readText,
  readXorAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { crc32 } from "../../relay/stun/crc32.js";
import {
  PacketKind,
  classifyFirstByte,
  classifyPacket,
  isStunMessage,
  stunMessageLengthFromStreamHeader,
} from "../../relay/stun/demultiplex.js";
import {
  longTermKey,
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAllAttributes, findAttribute, type StunMessage } from "../../relay/stun/message.js";

const KEY = longTermKey("alice", "example.org", "secret");
const TRANSACTION_ID = Buffer.from("000102030405060708090a0b", "hex");

function decoded(bytes: Buffer): StunMessage {
  const result = decodeStunMessage(bytes);
  if (!result.ok) throw new Error(`expected a valid message: ${result.reason}`);
  return result.message;
}

function reasonFor(bytes: Buffer): string {
  const result = decodeStunMessage(bytes);
  if (result.ok) throw new Error("expected the decoder to reject this message");
  return result.reason;
}

/** A header followed by raw attribute bytes, with the length field set to match. */
function rawMessage(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(body.length, 2);
  header.writeUInt32BE(0x2112a442, 4);
  TRANSACTION_ID.copy(header, 8);
  return Buffer.concat([header, body]);
}

function rawAttribute(type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(value.length, 2);
  return Buffer.concat([header, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

describe("message type", () => {
  it("interleaves method and class bits as RFC 8489 §5 lays them out", () => {
    expect(stunMessageType(StunMethod.Binding, StunClass.Request)).toBe(0x0001);
    expect(stunMessageType(StunMethod.Binding, StunClass.SuccessResponse)).toBe(0x0101);
    expect(stunMessageType(StunMethod.Binding, StunClass.ErrorResponse)).toBe(0x0111);
    expect(stunMessageType(StunMethod.Allocate, StunClass.Request)).toBe(0x0003);
    expect(stunMessageType(StunMethod.Allocate, StunClass.ErrorResponse)).toBe(0x0113);
    expect(stunMessageType(StunMethod.Send, StunClass.Indication)).toBe(0x0016);
    expect(stunMessageType(StunMethod.Data, StunClass.Indication)).toBe(0x0017);
    expect(stunMessageType(StunMethod.ChannelBind, StunClass.SuccessResponse)).toBe(0x0109);
  });

  it("splits every 12-bit method and class back out", () => {
    for (let method = 0; method <= 0xfff; method++) {
      for (const messageClass of [0, 1, 2, 3] as const) {
        const type = stunMessageType(method, messageClass);
        expect(type & 0xc000).toBe(0);
        if (methodOfMessageType(type) !== method || classOfMessageType(type) !== messageClass) {
          throw new Error(`method 0x${method.toString(16)} class ${messageClass} did not round-trip`);
        }
      }
    }
  });
});

describe("CRC-32", () => {
  it("matches the standard check value for '123456789'", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });
});

describe("build then decode", () => {
  const attributes: StunAttributeValue[] = [
    encodeText(AttributeType.Username, "alice"),
    encodeText(AttributeType.Realm, "example.org"),
    encodeText(AttributeType.Nonce, "abc"),
    encodeXorAddress(AttributeType.XorPeerAddress, { family: 4, address: "203.0.113.9", port: 49152 }, TRANSACTION_ID),
    encodeXorAddress(AttributeType.XorPeerAddress, { family: 6, address: "2001:db8::1", port: 3478 }, TRANSACTION_ID),
    encodeData(Buffer.from([1, 2, 3, 4, 5])),
  ];

  it("round-trips attributes, MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT", () => {
    const bytes = buildStunMessage({
      method: StunMethod.CreatePermission,
      messageClass: StunClass.Request,
      transactionId: TRANSACTION_ID,
      attributes,
      messageIntegrityKey: KEY,
      messageIntegritySha256Key: KEY,
      fingerprint: true,
    });
    expect(isStunMessage(bytes)).toBe(true);
    const message = decoded(bytes);
    expect(message.method).toBe(StunMethod.CreatePermission);
    expect(message.messageClass).toBe(StunClass.Request);
    expect(message.transactionId.equals(TRANSACTION_ID)).toBe(true);
    expect(message.attributes.map((a) => a.type)).toEqual([
      ...attributes.map((a) => a.type),
      AttributeType.MessageIntegrity,
      AttributeType.MessageIntegritySha256,
      AttributeType.Fingerprint,
    ]);
    const username = findAttribute(message, AttributeType.Username);
    expect(username && readText(message, username)).toEqual({ ok: true, value: "alice" });
    const peers = findAllAttributes(message, AttributeType.XorPeerAddress).map((a) => readXorAddress(message, a));
    expect(peers).toEqual([
      { ok: true, value: { family: 4, address: "203.0.113.9", port: 49152 } },
      { ok: true, value: { family: 6, address: "2001:db8::1", port: 3478 } },
    ]);
    const data = findAttribute(message, AttributeType.Data);
    expect(data && [...dataView(message, data)]).toEqual([1, 2, 3, 4, 5]);
    expect(verifyMessageIntegrity(message, KEY)).toBe(true);
    expect(verifyMessageIntegritySha256(message, KEY)).toBe(true);
    expect(verifyFingerprint(message)).toBe(true);
    expect(verifyMessageIntegrity(message, longTermKey("alice", "example.org", "wrong"))).toBe(false);
    expect(verifyMessageIntegritySha256(message, longTermKey("alice", "example.org", "wrong"))).toBe(false);
  });

  it("verifies a truncated MESSAGE-INTEGRITY-SHA256 against the prefix of the full HMAC", () => {
    const bytes = buildStunMessage({
      method: StunMethod.Refresh,
      messageClass: StunClass.Request,
      transactionId: TRANSACTION_ID,
      messageIntegritySha256Key: KEY,
      messageIntegritySha256Length: 16,
    });
    const message = decoded(bytes);
    expect(message.messageIntegritySha256?.length).toBe(16);
    expect(verifyMessageIntegritySha256(message, KEY)).toBe(true);
    expect(verifyMessageIntegrity(message, KEY)).toBe(false); // absent, so not verified
  });

  it("fails MESSAGE-INTEGRITY or FINGERPRINT when any single byte changes", () => {
    const bytes = buildStunMessage({
      method: StunMethod.Allocate,
      messageClass: StunClass.Request,
      transactionId: TRANSACTION_ID,
      attributes,
      messageIntegrityKey: KEY,
      fingerprint: true,
    });
    const fingerprintStart = bytes.length - 8;
    for (let i = 0; i < bytes.length; i++) {
      const corrupted = Buffer.from(bytes);
      corrupted[i] = (corrupted[i] ?? 0) ^ 0x01;
      const result = decodeStunMessage(corrupted);
      if (!result.ok) continue; // the header or an attribute header no longer parses: also a rejection
      const integrityOk = verifyMessageIntegrity(result.message, KEY);
      const fingerprintOk = verifyFingerprint(result.message);
      if (i < fingerprintStart) {
        // Everything before FINGERPRINT is covered by the CRC; everything before MESSAGE-INTEGRITY by the HMAC too.
        expect(fingerprintOk, `byte ${i}`).toBe(false);
      } else {
        expect(integrityOk && fingerprintOk, `byte ${i}`).toBe(false);
      }
      if (i < fingerprintStart - 24) expect(integrityOk, `byte ${i}`).toBe(false);
    }
  });

  it("writes padding as zeros", () => {
    const bytes = buildStunMessage({
      method: StunMethod.Binding,
      messageClass: StunClass.SuccessResponse,
      transactionId: TRANSACTION_ID,
      attributes: [encodeText(AttributeType.Software, "x"), encodeData(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]))],
    });
    // SOFTWARE: header at 20, value byte 24, padding 25..27. DATA: header at 28, value 32..36, padding 37..39.
    expect(bytes.length).toBe(40);
    expect([...bytes.subarray(25, 28)]).toEqual([0, 0, 0]);
    expect([...bytes.subarray(37, 40)]).toEqual([0, 0, 0]);
  });

  it("builds an error response that reads back", () => {
    const bytes = buildStunMessage({
      method: StunMethod.Allocate,
      messageClass: StunClass.ErrorResponse,
      transactionId: newTransactionId(),
      attributes: [encodeErrorCode(438, "Stale Nonce")],
    });
    const message = decoded(bytes);
    const attribute = findAttribute(message, AttributeType.ErrorCode);
    expect(attribute && readErrorCode(message, attribute)).toEqual({ ok: true, value: { code: 438, reason: "Stale Nonce" } });
  });

  it("refuses inputs only a bug could produce", () => {
    const base = { method: StunMethod.Binding, messageClass: StunClass.Request };
    expect(() => buildStunMessage({ ...base, transactionId: Buffer.alloc(11) })).toThrow(/12 bytes/);
    expect(() => buildStunMessage({ ...base, method: 0x1000, transactionId: TRANSACTION_ID })).toThrow(/method/);
    expect(() =>
      buildStunMessage({ ...base, transactionId: TRANSACTION_ID, messageIntegritySha256Key: KEY, messageIntegritySha256Length: 12 }),
    ).toThrow(/16 to 32/);
    expect(() =>
      buildStunMessage({ ...base, transactionId: TRANSACTION_ID, attributes: [encodeData(Buffer.alloc(0x10000))] }),
    ).toThrow(/65535/);
  });
});

describe("decoder rules", () => {
  it("ignores attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT", () => {
    const signed = buildStunMessage({
      method: StunMethod.Binding,
      messageClass: StunClass.Request,
      transactionId: TRANSACTION_ID,
      attributes: [encodeText(AttributeType.Username, "alice")],
      messageIntegrityKey: KEY,
    });
    // Append an unauthenticated USERNAME and an unknown comprehension-required attribute after MI.
    const appended = Buffer.concat([
      signed.subarray(20),
      rawAttribute(AttributeType.Username, Buffer.from("mallory")),
      rawAttribute(0x7777, Buffer.from([1, 2, 3, 4])),
    ]);
    const message = decoded(rawMessage(signed.readUInt16BE(0), appended));
    expect(message.attributes.map((a) => a.type)).toEqual([AttributeType.Username, AttributeType.MessageIntegrity]);
    expect(message.unknownComprehensionRequired).toEqual([]);
    const username = findAttribute(message, AttributeType.Username);
    expect(username && readText(message, username)).toEqual({ ok: true, value: "alice" });
    // The HMAC covers only what precedes it, with the length adjusted, so it still verifies.
    expect(verifyMessageIntegrity(message, KEY)).toBe(true);
  });

  it("reports unknown comprehension-required attributes once each, and not comprehension-optional ones", () => {
    const body = Buffer.concat([
      rawAttribute(0x7001, Buffer.from([1])),
      rawAttribute(0xc001, Buffer.from([2])),
      rawAttribute(0x7001, Buffer.from([3])),
      rawAttribute(0x0002, Buffer.alloc(0)),
      rawAttribute(AttributeType.Lifetime, Buffer.alloc(4)),
    ]);
    const message = decoded(rawMessage(0x0003, body));
    expect(message.unknownComprehensionRequired).toEqual([0x7001, 0x0002]);
    expect(message.attributes).toHaveLength(5);
  });

  it("lets the caller choose which attributes it understands", () => {
    const bytes = rawMessage(0x0001, rawAttribute(AttributeType.Lifetime, Buffer.alloc(4)));
    const result = decodeStunMessage(bytes, new Set());
    expect(result.ok && result.message.unknownComprehensionRequired).toEqual([AttributeType.Lifetime]);
  });

  it("rejects malformed framing with a reason that names the problem", () => {
    const valid = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: TRANSACTION_ID, fingerprint: true });
    expect(reasonFor(Buffer.alloc(0))).toMatch(/shorter than the 20-byte STUN header/);
    expect(reasonFor(valid.subarray(0, 19))).toMatch(/shorter than the 20-byte/);

    const topBits = Buffer.from(valid);
    topBits[0] = 0x40;
    expect(reasonFor(topBits)).toMatch(/first two bits/);

    const badCookie = Buffer.from(valid);
    badCookie[4] = 0x22;
    expect(reasonFor(badCookie)).toMatch(/magic cookie/);

    const oddLength = Buffer.concat([valid, Buffer.alloc(2)]);
    oddLength.writeUInt16BE(valid.length - 20 + 2, 2);
    expect(reasonFor(oddLength)).toMatch(/not a multiple of 4/);

    expect(reasonFor(valid.subarray(0, valid.length - 4))).toMatch(/header length says 8 bytes.*holds 4/);

    const overrun = rawMessage(0x0001, Buffer.from([0x80, 0x22, 0x00, 0x09, 0x61, 0x62, 0x63, 0x64]));
    expect(reasonFor(overrun)).toMatch(/attribute 0x8022 at byte 20 declares 9 value bytes .* only 4 remain/);

    const afterFingerprint = Buffer.concat([valid.subarray(20), rawAttribute(AttributeType.Software, Buffer.from("late"))]);
    expect(reasonFor(rawMessage(0x0001, afterFingerprint))).toMatch(/follows FINGERPRINT/);

    expect(reasonFor(rawMessage(0x0001, rawAttribute(AttributeType.MessageIntegrity, Buffer.alloc(16))))).toMatch(
      /MESSAGE-INTEGRITY at byte 20 is 16 bytes, expected 20/,
    );
    expect(reasonFor(rawMessage(0x0001, rawAttribute(AttributeType.Fingerprint, Buffer.alloc(8))))).toMatch(/FINGERPRINT .* expected 4/);
    expect(reasonFor(rawMessage(0x0001, rawAttribute(AttributeType.MessageIntegritySha256, Buffer.alloc(12))))).toMatch(
      /16 to 32 bytes/,
    );
  });

  it("accepts a header-only message", () => {
    const message = decoded(rawMessage(0x0001, Buffer.alloc(0)));
    expect(message.attributes).toEqual([]);
    expect(message.messageIntegrity).toBeUndefined();
  });
});

describe("demultiplexing and stream framing", () => {
  it("tells STUN from ChannelData by the first byte", () => {
    for (let byte = 0; byte < 256; byte++) {
      // ChannelData up to 0x7F: RFC 5766's channel range, which coturn's client still uses.
      const expected = byte <= 3 ? PacketKind.Stun : byte >= 0x40 && byte <= 0x7f ? PacketKind.ChannelData : PacketKind.Other;
      expect(classifyFirstByte(byte)).toBe(expected);
    }
    expect(classifyPacket(Buffer.alloc(0))).toBe(PacketKind.Other);
    expect(classifyPacket(Buffer.from([0x40, 0x00, 0x00, 0x00]))).toBe(PacketKind.ChannelData);
  });

  it("recognises STUN datagrams by header shape", () => {
    const message = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: TRANSACTION_ID });
    expect(isStunMessage(message)).toBe(true);
    expect(isStunMessage(message.subarray(0, 19))).toBe(false);
    expect(isStunMessage(Buffer.concat([message, Buffer.alloc(4)]))).toBe(false);
    const channelData = Buffer.from([0x40, 0x00, 0x00, 0x10, ...Buffer.alloc(16)]);
    expect(isStunMessage(channelData)).toBe(false);
  });

  it("reads a message's total length from the first 4 bytes of a stream", () => {
    const message = buildStunMessage({
      method: StunMethod.Binding,
      messageClass: StunClass.Request,
      transactionId: TRANSACTION_ID,
      attributes: [encodeText(AttributeType.Software, "relay")],
    });
    const stream = Buffer.concat([message, message]);
    expect(stunMessageLengthFromStreamHeader(stream)).toBe(message.length);
    expect(stunMessageLengthFromStreamHeader(stream, message.length)).toBe(message.length);
    expect(stunMessageLengthFromStreamHeader(stream.subarray(0, 3))).toBeUndefined();
    expect(stunMessageLengthFromStreamHeader(stream, stream.length - 2)).toBeUndefined();
  });
});
