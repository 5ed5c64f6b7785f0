/**
 * The pure-TypeScript SHA-1 / HMAC-SHA1 (relay/stun/sha1.ts) against node:crypto: every input length from 0 to
 * 300 bytes, keys shorter than, equal to and longer than a block, split updates, the key cache, and the builder's
 * MESSAGE-INTEGRITY against an HMAC node:crypto computes over the same bytes.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { verifyMessageIntegrity } from "../../relay/stun/integrity.js";
import { decodeStunMessage } from "../../relay/stun/message.js";
import { HMAC_SHA1_KEY_CACHE_SLOTS, HmacSha1Key, hmacSha1, hmacSha1KeyFor, sha1 } from "../../relay/stun/sha1.js";

const KEY_LENGTHS = [0, 1, 16, 20, 55, 63, 64, 65, 100, 200];

function tag(key: HmacSha1Key, data: Uint8Array, splits: readonly number[] = []): Buffer {
  const out = Buffer.alloc(20);
  hmacSha1.start(key);
  let from = 0;
  for (const at of [...splits, data.length]) {
    hmacSha1.update(data, from, at);
    from = at;
  }
  hmacSha1.finishInto(out);
  return out;
}

describe("sha1", () => {
  it("equals node:crypto's SHA-1 for every length from 0 to 300 bytes", () => {
    for (let length = 0; length <= 300; length++) {
      const data = randomBytes(length);
      expect(Buffer.from(sha1(data)).toString("hex"), `length ${length}`).toBe(createHash("sha1").update(data).digest("hex"));
    }
  });

  it("gives the FIPS 180 digest of 'abc'", () => {
    expect(Buffer.from(sha1(Buffer.from("abc"))).toString("hex")).toBe("a9993e364706816aba3e25717850c26c9cd0d89d");
  });
});

describe("HMAC-SHA1", () => {
  it("equals node:crypto's createHmac for every message length 0..300 under keys of many lengths", () => {
    for (let length = 0; length <= 300; length++) {
      const data = randomBytes(length);
      const rawKey = randomBytes(KEY_LENGTHS[length % KEY_LENGTHS.length]!);
      const expected = createHmac("sha1", rawKey).update(data).digest("hex");
      expect(tag(new HmacSha1Key(rawKey), data).toString("hex"), `length ${length}, key ${rawKey.length}`).toBe(expected);
      expect(tag(hmacSha1KeyFor(rawKey), data).toString("hex")).toBe(expected);
    }
  });

  it("gives the same tag however the message is split across updates", () => {
    for (let trial = 0; trial < 200; trial++) {
      const data = randomBytes(Math.floor(Math.random() * 301));
      const rawKey = randomBytes(16);
      const splits = [Math.floor(Math.random() * (data.length + 1)), Math.floor(Math.random() * (data.length + 1))].sort((a, b) => a - b);
      expect(tag(new HmacSha1Key(rawKey), data, splits).toString("hex")).toBe(createHmac("sha1", rawKey).update(data).digest("hex"));
    }
  });

  it("gives RFC 2202's test case 2 (key 'Jefe')", () => {
    const data = Buffer.from("what do ya want for nothing?");
    expect(tag(new HmacSha1Key(Buffer.from("Jefe")), data).toString("hex")).toBe("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  });

  it("compares a received tag or prefix in finishEquals, and refuses impossible ranges", () => {
    const rawKey = randomBytes(16);
    const data = randomBytes(90);
    const expected = createHmac("sha1", rawKey).update(data).digest();
    const key = new HmacSha1Key(rawKey);
    const framed = Buffer.concat([Buffer.alloc(3), expected]);
    expect(hmacSha1.start(key).update(data).finishEquals(framed, 3, 20)).toBe(true);
    expect(hmacSha1.start(key).update(data).finishEquals(framed, 3, 12)).toBe(true);
    for (const position of [0, 7, 19]) {
      const altered = Buffer.from(framed);
      altered[3 + position]! ^= 0x01;
      expect(hmacSha1.start(key).update(data).finishEquals(altered, 3, 20), `byte ${position}`).toBe(false);
    }
    expect(hmacSha1.start(key).update(data).finishEquals(framed, 3, 0)).toBe(false);
    expect(hmacSha1.start(key).update(data).finishEquals(framed, 3, 21)).toBe(false);
    expect(hmacSha1.start(key).update(data).finishEquals(framed, 10, 20)).toBe(false);
  });

  it("keeps the cache right with more keys than slots, and unaffected when the caller changes its key buffer", () => {
    const keys = Array.from({ length: HMAC_SHA1_KEY_CACHE_SLOTS * 3 }, () => randomBytes(16));
    const data = randomBytes(100);
    for (let pass = 0; pass < 2; pass++) {
      for (const rawKey of keys) {
        expect(tag(hmacSha1KeyFor(rawKey), data).equals(createHmac("sha1", rawKey).update(data).digest())).toBe(true);
      }
    }
    const rawKey = randomBytes(16);
    const before = createHmac("sha1", rawKey).update(data).digest();
    hmacSha1KeyFor(rawKey);
    rawKey[0]! ^= 0xff;
    expect(tag(hmacSha1KeyFor(rawKey), data).equals(createHmac("sha1", rawKey).update(data).digest())).toBe(true);
    rawKey[0]! ^= 0xff;
    expect(tag(hmacSha1KeyFor(rawKey), data).equals(before)).toBe(true);
  });
});

describe("MESSAGE-INTEGRITY through sha1.ts", () => {
  it("signs what node:crypto computes, and verifies it; a changed byte or key fails", () => {
    for (let valueLength = 0; valueLength <= 300; valueLength += 7) {
      const rawKey = randomBytes(16);
      const message = buildStunMessage({
        method: StunMethod.Binding,
        messageClass: StunClass.SuccessResponse,
        transactionId: newTransactionId(),
        attributes: [{ type: AttributeType.Software, value: randomBytes(valueLength) }],
        messageIntegrityKey: rawKey,
        fingerprint: true,
      });
      // MESSAGE-INTEGRITY sits 32 bytes from the end (its header and 20 bytes, then FINGERPRINT's 8).
      const integrityStart = message.length - 8 - 24;
      const covered = Buffer.from(message.subarray(0, integrityStart));
      covered.writeUInt16BE(integrityStart + 24 - 20, 2);
      const expected = createHmac("sha1", rawKey).update(covered).digest();
      expect(message.subarray(integrityStart + 4, integrityStart + 24).equals(expected), `value ${valueLength}`).toBe(true);

      const decoded = decodeStunMessage(message);
      if (!decoded.ok) throw new Error(decoded.reason);
      expect(verifyMessageIntegrity(decoded.message, rawKey)).toBe(true);
      expect(verifyMessageIntegrity(decoded.message, randomBytes(16))).toBe(false);
      const altered = Buffer.from(message);
      altered[integrityStart - 1]! ^= 0x01;
      const alteredDecoded = decodeStunMessage(altered);
      if (alteredDecoded.ok) expect(verifyMessageIntegrity(alteredDecoded.message, rawKey)).toBe(false);
    }
  });
});
