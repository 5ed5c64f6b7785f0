/**
 * STUN (RFC 8489) and TURN (RFC 8656) numbers: the fixed header, message methods and classes, attribute
 * types, and the set of attributes this relay knows how to process.
 */

/** Fixed value in bytes 4..7 of every RFC 5389+ message; it tells STUN apart from other protocols on the port. */
export const MAGIC_COOKIE = 0x2112a442;
/** Every STUN message starts with a 20-byte header: type, length, magic cookie, 96-bit transaction id. */
export const STUN_HEADER_LENGTH = 20;
export const TRANSACTION_ID_LENGTH = 12;
/** Each attribute starts with a 2-byte type and a 2-byte value length. */
export const ATTRIBUTE_HEADER_LENGTH = 4;
/** Attribute values are padded so that the next attribute starts on a 4-byte boundary. */
export const ATTRIBUTE_ALIGNMENT = 4;
/** The header's length field is 16 bits, so the body (everything after the header) is at most this many bytes. */
export const MAX_MESSAGE_BODY_LENGTH = 0xffff;

/** HMAC-SHA1 output. */
export const MESSAGE_INTEGRITY_LENGTH = 20;
/** RFC 8489 §14.6: MESSAGE-INTEGRITY-SHA256 may be truncated, but to no fewer than 16 bytes and a multiple of 4. */
export const MESSAGE_INTEGRITY_SHA256_MIN_LENGTH = 16;
export const MESSAGE_INTEGRITY_SHA256_MAX_LENGTH = 32;
export const FINGERPRINT_LENGTH = 4;
/** RFC 8489 §14.7: the CRC-32 is XORed with this ("STUN" in ASCII) so a STUN CRC never equals an embedded protocol's. */
export const FINGERPRINT_XOR = 0x5354554e;

/** The two class bits of the message type (RFC 8489 §5). */
export const StunClass = {
  Request: 0b00,
  Indication: 0b01,
  SuccessResponse: 0b10,
  ErrorResponse: 0b11,
} as const;
export type StunClass = (typeof StunClass)[keyof typeof StunClass];

/** Methods this relay speaks: Binding from STUN, the rest from TURN (RFC 8656 §17). */
export const StunMethod = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
} as const;
export type StunMethod = (typeof StunMethod)[keyof typeof StunMethod];

/** Methods are 12 bits wide. */
export const MAX_METHOD = 0xfff;

/**
 * Attribute types. Types below 0x8000 are comprehension-required: a server that does not understand one must
 * reject the request with 420 (Unknown Attribute); types from 0x8000 up are comprehension-optional and may be
 * skipped silently.
 */
export const AttributeType = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  Realm: 0x0014,
  Nonce: 0x0015,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  Userhash: 0x001e,
  XorMappedAddress: 0x0020,
  ReservationToken: 0x0022,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  PasswordAlgorithms: 0x8002,
  AlternateDomain: 0x8003,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
} as const;
export type AttributeType = (typeof AttributeType)[keyof typeof AttributeType];

/** First comprehension-optional attribute type. */
export const COMPREHENSION_OPTIONAL_MIN = 0x8000;

export function isComprehensionRequired(type: number): boolean {
  return type < COMPREHENSION_OPTIONAL_MIN;
}

/**
 * Attributes the relay processes. A comprehension-required attribute outside this set makes the decoder list it
 * in `unknownComprehensionRequired`, so the server can answer 420 with UNKNOWN-ATTRIBUTES. The ICE attributes
 * are here because browsers send them in Binding requests to the relay's STUN port, and a 420 there would break
 * connectivity checks for no benefit; the relay simply does not act on them.
 */
export const UNDERSTOOD_ATTRIBUTES: ReadonlySet<number> = new Set<number>([
  AttributeType.MappedAddress,
  AttributeType.Username,
  AttributeType.MessageIntegrity,
  AttributeType.ErrorCode,
  AttributeType.UnknownAttributes,
  AttributeType.ChannelNumber,
  AttributeType.Lifetime,
  AttributeType.XorPeerAddress,
  AttributeType.Data,
  AttributeType.Realm,
  AttributeType.Nonce,
  AttributeType.XorRelayedAddress,
  AttributeType.RequestedAddressFamily,
  AttributeType.EvenPort,
  AttributeType.RequestedTransport,
  AttributeType.DontFragment,
  AttributeType.MessageIntegritySha256,
  AttributeType.PasswordAlgorithm,
  AttributeType.Userhash,
  AttributeType.XorMappedAddress,
  AttributeType.ReservationToken,
  AttributeType.Priority,
  AttributeType.UseCandidate,
  AttributeType.PasswordAlgorithms,
  AttributeType.AlternateDomain,
  AttributeType.Software,
  AttributeType.AlternateServer,
  AttributeType.Fingerprint,
  AttributeType.IceControlled,
  AttributeType.IceControlling,
]);

/**
 * Message type = 14 bits in which the class bits C1 and C0 sit at positions 8 and 4, splitting the 12 method
 * bits into runs of 5, 3 and 4 (RFC 8489 §5). The odd layout keeps Binding (0x001) compatible with RFC 3489.
 */
export function stunMessageType(method: number, messageClass: StunClass): number {
  return (
    (method & 0x000f) |
    ((method & 0x0070) << 1) |
    ((method & 0x0f80) << 2) |
    ((messageClass & 0b01) << 4) |
    ((messageClass & 0b10) << 7)
  );
}

export function methodOfMessageType(type: number): number {
  return (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
}

export function classOfMessageType(type: number): StunClass {
  return (((type & 0x0010) >> 4) | ((type & 0x0100) >> 7)) as StunClass;
}

/** Text attribute limits (RFC 8489 §14.3, §14.8, §14.9, §14.10, §14.14). */
export const TEXT_ATTRIBUTE_MAX_CHARACTERS = 127;
/** What we may send: fewer than 128 characters, which the RFC bounds at 509 bytes when encoding. */
export const TEXT_ATTRIBUTE_MAX_ENCODED_BYTES = 509;
/** What we must accept: up to 763 bytes, for compatibility with RFC 5389 senders. */
export const TEXT_ATTRIBUTE_MAX_DECODED_BYTES = 763;
/** USERNAME has no character limit, only bytes: fewer than 509 to send, up to 763 to receive. */
export const USERNAME_MAX_ENCODED_BYTES = 508;
