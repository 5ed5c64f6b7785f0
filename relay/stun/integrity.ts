/**
 * Credential keys and the checks of MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT on a decoded
 * message (RFC 8489 §9, §14.5-14.7). All synchronous: one HMAC per request is cheaper than a promise per request.
 * The received buffer is never modified, since it may be shared with other readers (logging, forwarding).
 *
 * MESSAGE-INTEGRITY (HMAC-SHA1, what every browser and coturn client sends) runs on ./sha1.ts with the key's pad
 * states prepared once per key; MESSAGE-INTEGRITY-SHA256 is rare in practice and stays on node:crypto.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { ATTRIBUTE_HEADER_LENGTH, FINGERPRINT_XOR, MESSAGE_INTEGRITY_LENGTH, STUN_HEADER_LENGTH } from "./constants.js";
import { crc32 } from "./crc32.js";
import { hmacSha1, hmacSha1KeyFor } from "./sha1.js";
import type { StunAttributeRef, StunMessage } from "./message.js";

/** PASSWORD-ALGORITHM values (RFC 8489 §18.5) and the hash each one uses for the long-term key. */
export const PasswordAlgorithm = {
  Md5: 0x0001,
  Sha256: 0x0002,
} as const;
export type PasswordAlgorithm = (typeof PasswordAlgorithm)[keyof typeof PasswordAlgorithm];

/**
 * Long-term credential key (RFC 8489 §9.2.2): hash of `username:realm:password` in UTF-8, MD5 unless the client
 * negotiated SHA-256 with PASSWORD-ALGORITHM. The RFC wants username and password passed through the
 * OpaqueString profile (SASLprep in RFC 5389) first; this function takes them as given, so callers that accept
 * non-ASCII credentials must prepare them.
 */
export function longTermKey(
  username: string,
  realm: string,
  password: string,
  algorithm: PasswordAlgorithm = PasswordAlgorithm.Md5,
): Buffer {
  const hash = algorithm === PasswordAlgorithm.Sha256 ? "sha256" : "md5";
  return createHash(hash).update(`${username}:${realm}:${password}`, "utf8").digest();
}

/** Short-term credential key (RFC 8489 §9.1.1): the password's UTF-8 bytes (again without OpaqueString preparation). */
export function shortTermKey(password: string): Buffer {
  return Buffer.from(password, "utf8");
}

/**
 * The header with its length field rewritten to end where `attribute` ends. Reused across calls: hashing is
 * synchronous, so nothing else can touch it between the write and the `update` that consumes it.
 */
const adjustedHeader = Buffer.alloc(STUN_HEADER_LENGTH);

function hmacSha256UpTo(key: Uint8Array, message: StunMessage, attribute: StunAttributeRef): Buffer {
  const buffer = message.buffer;
  const attributeStart = attribute.offset - ATTRIBUTE_HEADER_LENGTH;
  buffer.copy(adjustedHeader, 0, 0, STUN_HEADER_LENGTH);
  adjustedHeader.writeUInt16BE(attribute.offset + attribute.length - STUN_HEADER_LENGTH, 2);
  return createHmac("sha256", key)
    .update(adjustedHeader)
    .update(buffer.subarray(STUN_HEADER_LENGTH, attributeStart))
    .digest();
}

/**
 * True if the message carries MESSAGE-INTEGRITY and it matches HMAC-SHA1 under `key` over the message up to
 * the attribute, with the header length counting up to its end. False if it is absent or does not match.
 */
export function verifyMessageIntegrity(message: StunMessage, key: Uint8Array): boolean {
  const attribute = message.messageIntegrity;
  if (attribute === undefined) return false;
  // The decoder guarantees 20 bytes; anything else is a mismatch, never compared as a prefix.
  if (attribute.length !== MESSAGE_INTEGRITY_LENGTH) return false;
  const buffer = message.buffer;
  buffer.copy(adjustedHeader, 0, 0, STUN_HEADER_LENGTH);
  adjustedHeader.writeUInt16BE(attribute.offset + attribute.length - STUN_HEADER_LENGTH, 2);
  return hmacSha1
    .start(hmacSha1KeyFor(key))
    .update(adjustedHeader)
    .update(buffer, STUN_HEADER_LENGTH, attribute.offset - ATTRIBUTE_HEADER_LENGTH)
    .finishEquals(buffer, attribute.offset, MESSAGE_INTEGRITY_LENGTH);
}

/**
 * Like `verifyMessageIntegrity` for MESSAGE-INTEGRITY-SHA256 with HMAC-SHA256. The sender may have truncated
 * the MAC (RFC 8489 §14.6), so the received bytes are compared with the same-length prefix of the computed one.
 */
export function verifyMessageIntegritySha256(message: StunMessage, key: Uint8Array): boolean {
  const attribute = message.messageIntegritySha256;
  if (attribute === undefined) return false;
  const expected = hmacSha256UpTo(key, message, attribute);
  const received = message.buffer.subarray(attribute.offset, attribute.offset + attribute.length);
  return received.length <= expected.length && timingSafeEqual(received, expected.subarray(0, received.length));
}

/**
 * True if the message carries FINGERPRINT and it equals the CRC-32 of everything before it XOR 0x5354554e.
 * The decoder rejects anything after FINGERPRINT, so the header length already covers it as the RFC requires.
 */
export function verifyFingerprint(message: StunMessage): boolean {
  const attribute = message.fingerprint;
  if (attribute === undefined) return false;
  const expected = (crc32(message.buffer, 0, attribute.offset - ATTRIBUTE_HEADER_LENGTH) ^ FINGERPRINT_XOR) >>> 0;
  return message.buffer.readUInt32BE(attribute.offset) === expected;
}
