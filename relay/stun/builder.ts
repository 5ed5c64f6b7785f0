/**
 * Building a STUN message into one Buffer: header, attributes, then the optional MESSAGE-INTEGRITY,
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, in the order RFC 8489 requires. The size is computed first so the
 * message is allocated once; the buffer is zero-filled, so padding never leaks stale memory to the network.
 */
import { createHmac, randomBytes } from "node:crypto";
import {
  ATTRIBUTE_HEADER_LENGTH,
  AttributeType,
  FINGERPRINT_LENGTH,
  FINGERPRINT_XOR,
  MAGIC_COOKIE,
  MAX_METHOD,
  MAX_MESSAGE_BODY_LENGTH,
  MESSAGE_INTEGRITY_LENGTH,
  MESSAGE_INTEGRITY_SHA256_MAX_LENGTH,
  MESSAGE_INTEGRITY_SHA256_MIN_LENGTH,
  STUN_HEADER_LENGTH,
  type StunClass,
  TRANSACTION_ID_LENGTH,
  stunMessageType,
} from "./constants.js";
import { crc32 } from "./crc32.js";
import { hmacSha1, hmacSha1KeyFor } from "./sha1.js";
import { paddedLength } from "./message.js";

/** An attribute to send: its type and unpadded value. */
export interface StunAttributeValue {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface StunMessageSpec {
  readonly method: number;
  readonly messageClass: StunClass;
  /** 12 bytes; use `newTransactionId()` for a request, the request's id for its response. */
  readonly transactionId: Uint8Array;
  readonly attributes?: readonly StunAttributeValue[];
  /** Appends MESSAGE-INTEGRITY (HMAC-SHA1) keyed with this (see integrity.ts for long- and short-term keys). */
  readonly messageIntegrityKey?: Uint8Array;
  /** Appends MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256) keyed with this. */
  readonly messageIntegritySha256Key?: Uint8Array;
  /** Bytes of the HMAC-SHA256 to keep: 16 to 32 in steps of 4 (RFC 8489 §14.6); 32 if absent. */
  readonly messageIntegritySha256Length?: number;
  /** Appends FINGERPRINT, last. */
  readonly fingerprint?: boolean;
}

/** A fresh random transaction id. RFC 8489 §6 asks for a cryptographically random one, so replies cannot be forged blind. */
export function newTransactionId(): Buffer {
  return randomBytes(TRANSACTION_ID_LENGTH);
}

/**
 * Encodes `spec`. Throws RangeError on inputs only our own code could get wrong (a transaction id that is not
 * 12 bytes, a method over 12 bits, a message over 64 KiB, a bad truncation length); nothing here comes from the wire.
 */
export function buildStunMessage(spec: StunMessageSpec): Buffer {
  if (spec.transactionId.length !== TRANSACTION_ID_LENGTH) {
    throw new RangeError(`transaction id must be ${TRANSACTION_ID_LENGTH} bytes, got ${spec.transactionId.length}`);
  }
  if (!Number.isInteger(spec.method) || spec.method < 0 || spec.method > MAX_METHOD) {
    throw new RangeError(`method must be an integer from 0 to 0x${MAX_METHOD.toString(16)}, got ${spec.method}`);
  }
  const sha256Length = spec.messageIntegritySha256Length ?? MESSAGE_INTEGRITY_SHA256_MAX_LENGTH;
  if (
    spec.messageIntegritySha256Key !== undefined &&
    (sha256Length < MESSAGE_INTEGRITY_SHA256_MIN_LENGTH || sha256Length > MESSAGE_INTEGRITY_SHA256_MAX_LENGTH || sha256Length % 4 !== 0)
  ) {
    throw new RangeError(`MESSAGE-INTEGRITY-SHA256 length must be 16 to 32 in steps of 4, got ${sha256Length}`);
  }

  const attributes = spec.attributes ?? [];
  let bodyLength = 0;
  for (const attribute of attributes) {
    if (attribute.value.length > MAX_MESSAGE_BODY_LENGTH) {
      throw new RangeError(`attribute 0x${attribute.type.toString(16)} value is ${attribute.value.length} bytes; the length field holds at most 65535`);
    }
    bodyLength += ATTRIBUTE_HEADER_LENGTH + paddedLength(attribute.value.length);
  }
  if (spec.messageIntegrityKey !== undefined) bodyLength += ATTRIBUTE_HEADER_LENGTH + MESSAGE_INTEGRITY_LENGTH;
  if (spec.messageIntegritySha256Key !== undefined) bodyLength += ATTRIBUTE_HEADER_LENGTH + sha256Length;
  if (spec.fingerprint === true) bodyLength += ATTRIBUTE_HEADER_LENGTH + FINGERPRINT_LENGTH;
  if (bodyLength > MAX_MESSAGE_BODY_LENGTH) {
    throw new RangeError(`message body would be ${bodyLength} bytes; a STUN message body holds at most ${MAX_MESSAGE_BODY_LENGTH}`);
  }

  // Buffer.alloc zero-fills: padding bytes go out as zeros, never as leftovers from Node's buffer pool.
  const message = Buffer.alloc(STUN_HEADER_LENGTH + bodyLength);
  message.writeUInt16BE(stunMessageType(spec.method, spec.messageClass), 0);
  message.writeUInt32BE(MAGIC_COOKIE, 4);
  message.set(spec.transactionId, 8);

  let position = STUN_HEADER_LENGTH;
  for (const attribute of attributes) {
    position = writeAttributeHeader(message, position, attribute.type, attribute.value.length);
    message.set(attribute.value, position);
    position += paddedLength(attribute.value.length);
  }

  // Each integrity attribute covers the message up to itself, with the header length set as if it were last.
  if (spec.messageIntegrityKey !== undefined) {
    message.writeUInt16BE(position + ATTRIBUTE_HEADER_LENGTH + MESSAGE_INTEGRITY_LENGTH - STUN_HEADER_LENGTH, 2);
    // Pure-TypeScript HMAC-SHA1 with the key's pads prepared once (./sha1.ts): a fraction of createHmac's cost.
    hmacSha1.start(hmacSha1KeyFor(spec.messageIntegrityKey)).update(message, 0, position);
    position = writeAttributeHeader(message, position, AttributeType.MessageIntegrity, MESSAGE_INTEGRITY_LENGTH);
    hmacSha1.finishInto(message, position);
    position += MESSAGE_INTEGRITY_LENGTH;
  }
  if (spec.messageIntegritySha256Key !== undefined) {
    message.writeUInt16BE(position + ATTRIBUTE_HEADER_LENGTH + sha256Length - STUN_HEADER_LENGTH, 2);
    const mac = createHmac("sha256", spec.messageIntegritySha256Key).update(message.subarray(0, position)).digest();
    position = writeAttributeHeader(message, position, AttributeType.MessageIntegritySha256, sha256Length);
    message.set(mac.subarray(0, sha256Length), position);
    position += sha256Length;
  }
  message.writeUInt16BE(bodyLength, 2);
  if (spec.fingerprint === true) {
    const checksum = (crc32(message, 0, position) ^ FINGERPRINT_XOR) >>> 0;
    position = writeAttributeHeader(message, position, AttributeType.Fingerprint, FINGERPRINT_LENGTH);
    message.writeUInt32BE(checksum, position);
  }
  return message;
}

function writeAttributeHeader(message: Buffer, position: number, type: number, length: number): number {
  message.writeUInt16BE(type, position);
  message.writeUInt16BE(length, position + 2);
  return position + ATTRIBUTE_HEADER_LENGTH;
}
