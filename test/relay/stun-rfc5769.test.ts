/**
 * The STUN codec against the test vectors of RFC 5769 ("Test Vectors for STUN"), typed in from the RFC's hex.
 * Padding in the first three vectors is 0x20, not zero, on purpose: receivers must ignore padding bytes.
 */
import { describe, expect, it } from "vitest";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { readText, readXorAddress } from "../../relay/stun/attributes.js";
import { longTermKey, shortTermKey, verifyFingerprint, verifyMessageIntegrity } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

/** §2.1 Sample Request: Binding request, short-term credentials, SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME. */
const SAMPLE_REQUEST = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);

/** §2.2 Sample IPv4 Response: XOR-MAPPED-ADDRESS 192.0.2.1:32853. */
const SAMPLE_IPV4_RESPONSE = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);

/** §2.3 Sample IPv6 Response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
const SAMPLE_IPV6_RESPONSE = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);

/** §2.4 Sample Request with Long-Term Authentication: USERNAME, NONCE, REALM, MESSAGE-INTEGRITY, no FINGERPRINT. */
const SAMPLE_LONG_TERM_REQUEST = hex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
  00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
  00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
  00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
  00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);

const SHORT_TERM_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt";

function decoded(bytes: Buffer): StunMessage {
  const result = decodeStunMessage(bytes);
  if (!result.ok) throw new Error(`expected a valid message: ${result.reason}`);
  return result.message;
}

function text(message: StunMessage, type: number): string {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) throw new Error(`attribute 0x${type.toString(16)} missing`);
  const result = readText(message, attribute);
  if (!result.ok) throw new Error(result.reason);
  return result.value;
}

describe("RFC 5769 §2.1 sample request", () => {
  const message = decoded(SAMPLE_REQUEST);

  it("decodes as a Binding request with its attributes in order", () => {
    expect(message.method).toBe(StunMethod.Binding);
    expect(message.messageClass).toBe(StunClass.Request);
    expect(message.transactionId.toString("hex")).toBe("b7e7a701bc34d686fa87dfae");
    expect(message.attributes.map((a) => a.type)).toEqual([
      AttributeType.Software,
      AttributeType.Priority,
      AttributeType.IceControlled,
      AttributeType.Username,
      AttributeType.MessageIntegrity,
      AttributeType.Fingerprint,
    ]);
    expect(message.unknownComprehensionRequired).toEqual([]);
    expect(text(message, AttributeType.Software)).toBe("STUN test client");
    expect(text(message, AttributeType.Username)).toBe("evtj:h6vY");
  });

  it("verifies MESSAGE-INTEGRITY with the short-term password, and FINGERPRINT", () => {
    expect(verifyMessageIntegrity(message, shortTermKey(SHORT_TERM_PASSWORD))).toBe(true);
    expect(verifyMessageIntegrity(message, shortTermKey("wrong password"))).toBe(false);
    expect(verifyFingerprint(message)).toBe(true);
  });

  it("leaves the received buffer untouched while verifying", () => {
    const before = Buffer.from(SAMPLE_REQUEST);
    verifyMessageIntegrity(message, shortTermKey(SHORT_TERM_PASSWORD));
    verifyFingerprint(message);
    expect(SAMPLE_REQUEST.equals(before)).toBe(true);
  });
});

describe("RFC 5769 §2.2 and §2.3 sample responses", () => {
  it("reads the IPv4 XOR-MAPPED-ADDRESS and verifies both checks", () => {
    const message = decoded(SAMPLE_IPV4_RESPONSE);
    expect(message.method).toBe(StunMethod.Binding);
    expect(message.messageClass).toBe(StunClass.SuccessResponse);
    expect(text(message, AttributeType.Software)).toBe("test vector");
    const attribute = findAttribute(message, AttributeType.XorMappedAddress);
    expect(attribute && readXorAddress(message, attribute)).toEqual({ ok: true, value: { family: 4, address: "192.0.2.1", port: 32853 } });
    expect(verifyMessageIntegrity(message, shortTermKey(SHORT_TERM_PASSWORD))).toBe(true);
    expect(verifyFingerprint(message)).toBe(true);
  });

  it("reads the IPv6 XOR-MAPPED-ADDRESS and verifies both checks", () => {
    const message = decoded(SAMPLE_IPV6_RESPONSE);
    const attribute = findAttribute(message, AttributeType.XorMappedAddress);
    expect(attribute && readXorAddress(message, attribute)).toEqual({
      ok: true,
      value: { family: 6, address: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 },
    });
    expect(verifyMessageIntegrity(message, shortTermKey(SHORT_TERM_PASSWORD))).toBe(true);
    expect(verifyFingerprint(message)).toBe(true);
  });
});

describe("RFC 5769 §2.4 sample request with long-term authentication", () => {
  const message = decoded(SAMPLE_LONG_TERM_REQUEST);

  it("decodes USERNAME, NONCE and REALM", () => {
    expect(text(message, AttributeType.Username)).toBe("\u30de\u30c8\u30ea\u30c3\u30af\u30b9"); // マトリックス
    expect(text(message, AttributeType.Nonce)).toBe("f//499k954d6OL34oL9FSTvy64sA");
    expect(text(message, AttributeType.Realm)).toBe("example.org");
    expect(message.fingerprint).toBeUndefined();
    expect(verifyFingerprint(message)).toBe(false);
  });

  it("verifies MESSAGE-INTEGRITY with MD5(username:realm:password), password after SASLprep", () => {
    const key = longTermKey("マトリックス", "example.org", "TheMatrIX");
    expect(verifyMessageIntegrity(message, key)).toBe(true);
    expect(verifyMessageIntegrity(message, longTermKey("マトリックス", "example.org", "thematrix"))).toBe(false);
  });
});
