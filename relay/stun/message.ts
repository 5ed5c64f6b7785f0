/**
 * Decoding a STUN message (RFC 8489 §5, §14). The decoder validates the framing and records where each
 * attribute's value sits in the original buffer; it copies nothing and interprets no values (see attributes.ts
 * for that), so a relay can reject or route a datagram after touching only the bytes it needs.
 */
import {
  ATTRIBUTE_ALIGNMENT,
  ATTRIBUTE_HEADER_LENGTH,
  AttributeType,
  FINGERPRINT_LENGTH,
  MAGIC_COOKIE,
  MESSAGE_INTEGRITY_LENGTH,
  MESSAGE_INTEGRITY_SHA256_MAX_LENGTH,
  MESSAGE_INTEGRITY_SHA256_MIN_LENGTH,
  STUN_HEADER_LENGTH,
  type StunClass,
  UNDERSTOOD_ATTRIBUTES,
  classOfMessageType,
  isComprehensionRequired,
  methodOfMessageType,
} from "./constants.js";

/** Where one attribute lives in `StunMessage.buffer`. `offset` is the first byte of the value, after the type and length. */
export interface StunAttributeRef {
  readonly type: number;
  readonly offset: number;
  /** Value length without padding, as the attribute header states it. */
  readonly length: number;
}

export interface StunMessage {
  /** The bytes the message was decoded from; every offset below points into it. Not copied, so do not reuse it while the message is in use. */
  readonly buffer: Buffer;
  /** The 14-bit message type, and the method and class packed into it. */
  readonly type: number;
  readonly method: number;
  readonly messageClass: StunClass;
  /** A view of bytes 8..19 of `buffer`. */
  readonly transactionId: Buffer;
  /**
   * Attributes in wire order, including MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT. Attributes
   * that RFC 8489 says to ignore (anything after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and
   * FINGERPRINT, anything after MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT) are left out: they are not
   * covered by the integrity check, so acting on them would let an attacker append to an authenticated message.
   */
  readonly attributes: readonly StunAttributeRef[];
  readonly messageIntegrity: StunAttributeRef | undefined;
  readonly messageIntegritySha256: StunAttributeRef | undefined;
  readonly fingerprint: StunAttributeRef | undefined;
  /** Comprehension-required types (< 0x8000) not in the understood set, each listed once, for a 420 response's UNKNOWN-ATTRIBUTES. */
  readonly unknownComprehensionRequired: readonly number[];
}

/** The most unknown comprehension-required types one decode reports (for a 420's UNKNOWN-ATTRIBUTES). */
export const MAX_UNKNOWN_ATTRIBUTES = 16;

export type DecodeStunResult = { readonly ok: true; readonly message: StunMessage } | { readonly ok: false; readonly reason: string };

function failure(reason: string): DecodeStunResult {
  return { ok: false, reason };
}

function hex16(value: number): string {
  return `0x${value.toString(16).padStart(4, "0")}`;
}

export function paddedLength(valueLength: number): number {
  return (valueLength + ATTRIBUTE_ALIGNMENT - 1) & ~(ATTRIBUTE_ALIGNMENT - 1);
}

/**
 * Decodes one STUN message that fills `buffer` exactly, as a UDP datagram does (over TCP/TLS, cut the frame out
 * first with `stunMessageLengthFromStreamHeader`). Never throws: anything malformed comes back as
 * `{ ok: false, reason }`, and the reason says which byte or field is wrong.
 *
 * `understood` is the set of attribute types the caller acts on; comprehension-required types outside it are
 * reported in `unknownComprehensionRequired` rather than failing the decode, because the right answer to them
 * is a 420 error response, which needs the decoded transaction id.
 */
export function decodeStunMessage(buffer: Buffer, understood: ReadonlySet<number> = UNDERSTOOD_ATTRIBUTES): DecodeStunResult {
  if (buffer.length < STUN_HEADER_LENGTH) {
    return failure(`message is ${buffer.length} bytes, shorter than the ${STUN_HEADER_LENGTH}-byte STUN header`);
  }
  const type = buffer.readUInt16BE(0);
  if ((type & 0xc000) !== 0) {
    return failure(`the first two bits of a STUN message must be zero, but the type field is ${hex16(type)}`);
  }
  const cookie = buffer.readUInt32BE(4);
  if (cookie !== MAGIC_COOKIE) {
    return failure(`magic cookie is 0x${cookie.toString(16).padStart(8, "0")}, expected 0x2112a442 (not STUN, or a pre-RFC 5389 client)`);
  }
  const bodyLength = buffer.readUInt16BE(2);
  if (bodyLength % ATTRIBUTE_ALIGNMENT !== 0) {
    return failure(`header length ${bodyLength} is not a multiple of 4; STUN attributes are always padded to 4 bytes`);
  }
  if (bodyLength !== buffer.length - STUN_HEADER_LENGTH) {
    return failure(`header length says ${bodyLength} bytes follow the header, but the buffer holds ${buffer.length - STUN_HEADER_LENGTH}`);
  }

  const attributes: StunAttributeRef[] = [];
  const unknownComprehensionRequired: number[] = [];
  let messageIntegrity: StunAttributeRef | undefined;
  let messageIntegritySha256: StunAttributeRef | undefined;
  let fingerprint: StunAttributeRef | undefined;

  const end = buffer.length;
  let position = STUN_HEADER_LENGTH;
  while (position < end) {
    // Cannot trigger while the body length is a multiple of 4, but it keeps the bounds argument local.
    if (end - position < ATTRIBUTE_HEADER_LENGTH) {
      return failure(`attribute header at byte ${position} is cut off: only ${end - position} bytes remain`);
    }
    const attributeType = buffer.readUInt16BE(position);
    const length = buffer.readUInt16BE(position + 2);
    const offset = position + ATTRIBUTE_HEADER_LENGTH;
    const next = offset + paddedLength(length);
    if (next > end) {
      return failure(
        `attribute ${hex16(attributeType)} at byte ${position} declares ${length} value bytes (${next - offset} padded), but only ${end - offset} remain`,
      );
    }
    if (fingerprint !== undefined) {
      return failure(`attribute ${hex16(attributeType)} at byte ${position} follows FINGERPRINT, which must be the last attribute`);
    }
    const ref: StunAttributeRef = { type: attributeType, offset, length };

    if (attributeType === AttributeType.Fingerprint) {
      if (length !== FINGERPRINT_LENGTH) {
        return failure(`FINGERPRINT at byte ${position} is ${length} bytes, expected ${FINGERPRINT_LENGTH}`);
      }
      fingerprint = ref;
      attributes.push(ref);
    } else if (messageIntegritySha256 !== undefined) {
      // Only FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256; anything else is unauthenticated and ignored.
    } else if (attributeType === AttributeType.MessageIntegritySha256) {
      if (
        length < MESSAGE_INTEGRITY_SHA256_MIN_LENGTH ||
        length > MESSAGE_INTEGRITY_SHA256_MAX_LENGTH ||
        length % ATTRIBUTE_ALIGNMENT !== 0
      ) {
        return failure(`MESSAGE-INTEGRITY-SHA256 at byte ${position} is ${length} bytes; it must be 16 to 32 bytes in steps of 4`);
      }
      messageIntegritySha256 = ref;
      attributes.push(ref);
    } else if (messageIntegrity !== undefined) {
      // After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count; anything else is ignored.
    } else if (attributeType === AttributeType.MessageIntegrity) {
      if (length !== MESSAGE_INTEGRITY_LENGTH) {
        return failure(`MESSAGE-INTEGRITY at byte ${position} is ${length} bytes, expected ${MESSAGE_INTEGRITY_LENGTH}`);
      }
      messageIntegrity = ref;
      attributes.push(ref);
    } else {
      // Listed once each and at most MAX_UNKNOWN_ATTRIBUTES of them: a datagram full of distinct
      // unknown types must cost linear time (it arrives before any authentication), and one is
      // enough for a 420.
      if (
        isComprehensionRequired(attributeType) &&
        !understood.has(attributeType) &&
        unknownComprehensionRequired.length < MAX_UNKNOWN_ATTRIBUTES &&
        !unknownComprehensionRequired.includes(attributeType)
      ) {
        unknownComprehensionRequired.push(attributeType);
      }
      attributes.push(ref);
    }
    position = next;
  }

  return {
    ok: true,
    message: {
      buffer,
      type,
      method: methodOfMessageType(type),
      messageClass: classOfMessageType(type),
      transactionId: buffer.subarray(8, STUN_HEADER_LENGTH),
      attributes,
      messageIntegrity,
      messageIntegritySha256,
      fingerprint,
      unknownComprehensionRequired,
    },
  };
}

/** The first attribute of `type`: RFC 8489 §14 says only the first occurrence of a repeated attribute needs processing. */
export function findAttribute(message: StunMessage, type: number): StunAttributeRef | undefined {
  for (const attribute of message.attributes) {
    if (attribute.type === type) return attribute;
  }
  return undefined;
}

/** Every attribute of `type`, for the few that may repeat meaningfully (XOR-PEER-ADDRESS in CreatePermission). */
export function findAllAttributes(message: StunMessage, type: number): StunAttributeRef[] {
  return message.attributes.filter((attribute) => attribute.type === type);
}

/** The attribute's value as a view into the message buffer (no copy, no padding). */
export function attributeValue(message: StunMessage, attribute: StunAttributeRef): Buffer {
  return message.buffer.subarray(attribute.offset, attribute.offset + attribute.length);
}
