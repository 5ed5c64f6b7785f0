/**
 * Reading and writing attribute values (RFC 8489 §14, RFC 8656 §18). Readers take a decoded message and one of
 * its attribute refs, read straight from the received buffer and never throw: a malformed value from the wire
 * comes back as `{ ok: false, reason }` so the server can answer 400. Writers return a `StunAttributeValue` for
 * `buildStunMessage` and throw RangeError on bad input, which can only come from our own code.
 */
import { isUtf8 } from "node:buffer";
import {
  AttributeType,
  MAGIC_COOKIE,
  TEXT_ATTRIBUTE_MAX_CHARACTERS,
  TEXT_ATTRIBUTE_MAX_DECODED_BYTES,
  TEXT_ATTRIBUTE_MAX_ENCODED_BYTES,
  TRANSACTION_ID_LENGTH,
  USERNAME_MAX_ENCODED_BYTES,
} from "./constants.js";
import type { StunAttributeValue } from "./builder.js";
import { IPV4_LENGTH, IPV6_LENGTH, formatIpv4, formatIpv6, writeIpv4, writeIpv6 } from "./ip-address.js";
import type { StunAttributeRef, StunMessage } from "./message.js";

export type AttributeResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

function valid<T>(value: T): AttributeResult<T> {
  return { ok: true, value };
}
function invalid<T>(reason: string): AttributeResult<T> {
  return { ok: false, reason };
}

/** RFC spelling of each known attribute type, for error reasons. */
const ATTRIBUTE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(AttributeType).map(([name, type]) => [type, name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toUpperCase()]),
);

function attributeName(type: number): string {
  return ATTRIBUTE_NAMES.get(type) ?? `attribute 0x${type.toString(16).padStart(4, "0")}`;
}

function expectLength(attribute: StunAttributeRef, length: number): string | undefined {
  return attribute.length === length ? undefined : `${attributeName(attribute.type)} is ${attribute.length} bytes, expected ${length}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses: MAPPED-ADDRESS and the XOR family (XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS).
// Value: 1 reserved byte, family (0x01 IPv4, 0x02 IPv6), 16-bit port, then 4 or 16 address bytes.

export interface TransportAddress {
  readonly family: 4 | 6;
  /** Dotted quad, or RFC 5952 canonical IPv6 text. */
  readonly address: string;
  readonly port: number;
}

const WIRE_FAMILY_IPV4 = 0x01;
const WIRE_FAMILY_IPV6 = 0x02;
const ADDRESS_HEADER_LENGTH = 4;
/** Offset of the magic cookie in the header; cookie plus transaction id (bytes 4..19) is the XOR mask. */
const XOR_MASK_OFFSET = 4;

/**
 * Reads an XOR-*-ADDRESS value. The port is XORed with the cookie's top 16 bits, an IPv4 address with the cookie,
 * an IPv6 address with cookie + transaction id (RFC 8489 §14.2), so NATs that rewrite addresses they recognise
 * in payloads leave it alone. The mask is read from the message header in place.
 */
export function readXorAddress(message: StunMessage, attribute: StunAttributeRef): AttributeResult<TransportAddress> {
  return readAddress(message, attribute, true);
}

/** Reads a plain MAPPED-ADDRESS (or ALTERNATE-SERVER) value. */
export function readMappedAddress(message: StunMessage, attribute: StunAttributeRef): AttributeResult<TransportAddress> {
  return readAddress(message, attribute, false);
}

function readAddress(message: StunMessage, attribute: StunAttributeRef, xored: boolean): AttributeResult<TransportAddress> {
  const buffer = message.buffer;
  const name = attributeName(attribute.type);
  if (attribute.length < ADDRESS_HEADER_LENGTH) {
    return invalid(`${name} is ${attribute.length} bytes, too short for family and port`);
  }
  const wireFamily = buffer.readUInt8(attribute.offset + 1);
  const rawPort = buffer.readUInt16BE(attribute.offset + 2);
  const port = xored ? rawPort ^ (MAGIC_COOKIE >>> 16) : rawPort;
  const addressOffset = attribute.offset + ADDRESS_HEADER_LENGTH;
  const mask = xored ? buffer : undefined;
  if (wireFamily === WIRE_FAMILY_IPV4) {
    if (attribute.length !== ADDRESS_HEADER_LENGTH + IPV4_LENGTH) {
      return invalid(`${name} with an IPv4 address is ${attribute.length} bytes, expected ${ADDRESS_HEADER_LENGTH + IPV4_LENGTH}`);
    }
    return valid({ family: 4, address: formatIpv4(buffer, addressOffset, mask, XOR_MASK_OFFSET), port });
  }
  if (wireFamily === WIRE_FAMILY_IPV6) {
    if (attribute.length !== ADDRESS_HEADER_LENGTH + IPV6_LENGTH) {
      return invalid(`${name} with an IPv6 address is ${attribute.length} bytes, expected ${ADDRESS_HEADER_LENGTH + IPV6_LENGTH}`);
    }
    return valid({ family: 6, address: formatIpv6(buffer, addressOffset, mask, XOR_MASK_OFFSET), port });
  }
  return invalid(`${name} has address family 0x${wireFamily.toString(16).padStart(2, "0")}; only 0x01 (IPv4) and 0x02 (IPv6) exist`);
}

/** Encodes an XOR-*-ADDRESS of `type` for a message with `transactionId`. */
export function encodeXorAddress(type: number, address: TransportAddress, transactionId: Uint8Array): StunAttributeValue {
  if (transactionId.length !== TRANSACTION_ID_LENGTH) {
    throw new RangeError(`transaction id must be ${TRANSACTION_ID_LENGTH} bytes, got ${transactionId.length}`);
  }
  const value = encodeAddressValue(type, address);
  const mask = Buffer.alloc(4 + TRANSACTION_ID_LENGTH);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  mask.set(transactionId, 4);
  // The port takes the cookie's first two bytes; the address starts again from the cookie's first byte.
  value[2] = (value[2] ?? 0) ^ (mask[0] ?? 0);
  value[3] = (value[3] ?? 0) ^ (mask[1] ?? 0);
  for (let i = ADDRESS_HEADER_LENGTH; i < value.length; i++) value[i] = (value[i] ?? 0) ^ (mask[i - ADDRESS_HEADER_LENGTH] ?? 0);
  return { type, value };
}

/** Encodes a plain MAPPED-ADDRESS (or ALTERNATE-SERVER) of `type`. */
export function encodeMappedAddress(type: number, address: TransportAddress): StunAttributeValue {
  return { type, value: encodeAddressValue(type, address) };
}

function encodeAddressValue(type: number, address: TransportAddress): Buffer {
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > 0xffff) {
    throw new RangeError(`${attributeName(type)}: port must be an integer from 0 to 65535, got ${address.port}`);
  }
  const ipLength = address.family === 4 ? IPV4_LENGTH : IPV6_LENGTH;
  const value = Buffer.alloc(ADDRESS_HEADER_LENGTH + ipLength);
  value.writeUInt8(address.family === 4 ? WIRE_FAMILY_IPV4 : WIRE_FAMILY_IPV6, 1);
  value.writeUInt16BE(address.port, 2);
  const written =
    address.family === 4
      ? writeIpv4(address.address, value, ADDRESS_HEADER_LENGTH)
      : writeIpv6(address.address, value, ADDRESS_HEADER_LENGTH);
  if (!written) {
    throw new RangeError(`${attributeName(type)}: "${address.address}" is not an IPv${address.family} address`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// ERROR-CODE: 2 reserved bytes, 5 reserved bits + 3-bit class (hundreds), 8-bit number (0-99), UTF-8 reason.

export interface ErrorCode {
  /** 300 to 699, e.g. 401, 420, 438. */
  readonly code: number;
  readonly reason: string;
}

const ERROR_CODE_HEADER_LENGTH = 4;

export function readErrorCode(message: StunMessage, attribute: StunAttributeRef): AttributeResult<ErrorCode> {
  if (attribute.length < ERROR_CODE_HEADER_LENGTH) {
    return invalid(`ERROR-CODE is ${attribute.length} bytes, too short for class and number`);
  }
  const errorClass = message.buffer.readUInt8(attribute.offset + 2) & 0x07;
  const number = message.buffer.readUInt8(attribute.offset + 3);
  if (errorClass < 3 || errorClass > 6 || number > 99) {
    return invalid(`ERROR-CODE has class ${errorClass} and number ${number}; codes run from 300 to 699`);
  }
  const reason = readTextRange(message.buffer, attribute.offset + ERROR_CODE_HEADER_LENGTH, attribute.length - ERROR_CODE_HEADER_LENGTH, "ERROR-CODE reason", TEXT_ATTRIBUTE_MAX_CHARACTERS);
  if (!reason.ok) return reason;
  return valid({ code: errorClass * 100 + number, reason: reason.value });
}

export function encodeErrorCode(code: number, reason: string): StunAttributeValue {
  if (!Number.isInteger(code) || code < 300 || code > 699) {
    throw new RangeError(`ERROR-CODE must be an integer from 300 to 699, got ${code}`);
  }
  const text = encodeTextBytes(reason, "ERROR-CODE reason", TEXT_ATTRIBUTE_MAX_CHARACTERS, TEXT_ATTRIBUTE_MAX_ENCODED_BYTES);
  const value = Buffer.alloc(ERROR_CODE_HEADER_LENGTH + text.length);
  value.writeUInt8(Math.floor(code / 100), 2);
  value.writeUInt8(code % 100, 3);
  value.set(text, ERROR_CODE_HEADER_LENGTH);
  return { type: AttributeType.ErrorCode, value };
}

// ---------------------------------------------------------------------------------------------------------------
// UNKNOWN-ATTRIBUTES: a list of 16-bit attribute types.

export function readUnknownAttributes(message: StunMessage, attribute: StunAttributeRef): AttributeResult<number[]> {
  if (attribute.length % 2 !== 0) {
    return invalid(`UNKNOWN-ATTRIBUTES is ${attribute.length} bytes; it holds 2-byte attribute types`);
  }
  const types: number[] = [];
  for (let i = 0; i < attribute.length; i += 2) types.push(message.buffer.readUInt16BE(attribute.offset + i));
  return valid(types);
}

export function encodeUnknownAttributes(types: readonly number[]): StunAttributeValue {
  const value = Buffer.alloc(types.length * 2);
  types.forEach((type, index) => {
    if (!Number.isInteger(type) || type < 0 || type > 0xffff) {
      throw new RangeError(`UNKNOWN-ATTRIBUTES: attribute type must be a 16-bit integer, got ${type}`);
    }
    value.writeUInt16BE(type, index * 2);
  });
  return { type: AttributeType.UnknownAttributes, value };
}

// ---------------------------------------------------------------------------------------------------------------
// UTF-8 text: USERNAME, REALM, NONCE, SOFTWARE. Limits: RFC 8489 §14.3 (USERNAME: fewer than 509 bytes), §14.9,
// §14.10, §14.14 (fewer than 128 characters). Receivers accept up to 763 bytes for RFC 5389 senders.

/** Attribute types whose value is plain UTF-8 text. */
export type TextAttributeType =
  | typeof AttributeType.Username
  | typeof AttributeType.Realm
  | typeof AttributeType.Nonce
  | typeof AttributeType.Software;

function characterLimit(type: TextAttributeType): number | undefined {
  return type === AttributeType.Username ? undefined : TEXT_ATTRIBUTE_MAX_CHARACTERS;
}

/** Reads a UTF-8 text attribute, rejecting invalid UTF-8 and values over the RFC limits. */
export function readText(message: StunMessage, attribute: StunAttributeRef): AttributeResult<string> {
  const limit = isTextAttributeType(attribute.type) ? characterLimit(attribute.type) : TEXT_ATTRIBUTE_MAX_CHARACTERS;
  return readTextRange(message.buffer, attribute.offset, attribute.length, attributeName(attribute.type), limit);
}

function isTextAttributeType(type: number): type is TextAttributeType {
  return type === AttributeType.Username || type === AttributeType.Realm || type === AttributeType.Nonce || type === AttributeType.Software;
}

function readTextRange(
  buffer: Buffer,
  offset: number,
  length: number,
  name: string,
  maxCharacters: number | undefined,
): AttributeResult<string> {
  if (length > TEXT_ATTRIBUTE_MAX_DECODED_BYTES) {
    return invalid(`${name} is ${length} bytes; at most ${TEXT_ATTRIBUTE_MAX_DECODED_BYTES} are accepted`);
  }
  const bytes = buffer.subarray(offset, offset + length);
  if (!isUtf8(bytes)) return invalid(`${name} is not valid UTF-8`);
  if (maxCharacters !== undefined) {
    const characters = countUtf8Characters(bytes);
    if (characters > maxCharacters) return invalid(`${name} has ${characters} characters; at most ${maxCharacters} are allowed`);
  }
  return valid(bytes.toString("utf8"));
}

/** Code points in valid UTF-8: every byte except continuation bytes (10xxxxxx) starts one. */
function countUtf8Characters(bytes: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < bytes.length; i++) if (((bytes[i] ?? 0) & 0xc0) !== 0x80) count++;
  return count;
}

/** Encodes USERNAME, REALM, NONCE or SOFTWARE, enforcing the limits a sender must keep. */
export function encodeText(type: TextAttributeType, text: string): StunAttributeValue {
  const maxBytes = type === AttributeType.Username ? USERNAME_MAX_ENCODED_BYTES : TEXT_ATTRIBUTE_MAX_ENCODED_BYTES;
  return { type, value: encodeTextBytes(text, attributeName(type), characterLimit(type), maxBytes) };
}

function encodeTextBytes(text: string, name: string, maxCharacters: number | undefined, maxBytes: number): Buffer {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length > maxBytes) throw new RangeError(`${name} is ${bytes.length} bytes in UTF-8; at most ${maxBytes} may be sent`);
  if (maxCharacters !== undefined) {
    const characters = countUtf8Characters(bytes);
    if (characters > maxCharacters) throw new RangeError(`${name} has ${characters} characters; at most ${maxCharacters} may be sent`);
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// TURN's fixed-size attributes (RFC 8656 §18).

/** LIFETIME: requested or granted allocation lifetime in seconds, 32 bits. */
export function readLifetime(message: StunMessage, attribute: StunAttributeRef): AttributeResult<number> {
  const problem = expectLength(attribute, 4);
  return problem === undefined ? valid(message.buffer.readUInt32BE(attribute.offset)) : invalid(problem);
}

export function encodeLifetime(seconds: number): StunAttributeValue {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xffffffff) {
    throw new RangeError(`LIFETIME must be a whole number of seconds from 0 to 2^32-1, got ${seconds}`);
  }
  const value = Buffer.alloc(4);
  value.writeUInt32BE(seconds, 0);
  return { type: AttributeType.Lifetime, value };
}

/** ChannelData channels are 0x4000-0x4FFF (RFC 8656 §12); other values in CHANNEL-NUMBER get a 400. */
export const MIN_CHANNEL_NUMBER = 0x4000;
export const MAX_CHANNEL_NUMBER = 0x4fff;

/** CHANNEL-NUMBER: 16-bit channel number, then 2 reserved bytes. Returns the number as sent; range checks are the handler's. */
export function readChannelNumber(message: StunMessage, attribute: StunAttributeRef): AttributeResult<number> {
  const problem = expectLength(attribute, 4);
  return problem === undefined ? valid(message.buffer.readUInt16BE(attribute.offset)) : invalid(problem);
}

export function encodeChannelNumber(channel: number): StunAttributeValue {
  if (!Number.isInteger(channel) || channel < MIN_CHANNEL_NUMBER || channel > MAX_CHANNEL_NUMBER) {
    throw new RangeError(`CHANNEL-NUMBER must be from 0x4000 to 0x4FFF, got ${channel}`);
  }
  const value = Buffer.alloc(4);
  value.writeUInt16BE(channel, 0);
  return { type: AttributeType.ChannelNumber, value };
}

/** IANA protocol number of UDP, the only transport RFC 8656 allocations relay. */
export const TRANSPORT_PROTOCOL_UDP = 17;

/** REQUESTED-TRANSPORT: IANA protocol number (17 = UDP) in the first byte, then 3 reserved bytes. */
export function readRequestedTransport(message: StunMessage, attribute: StunAttributeRef): AttributeResult<number> {
  const problem = expectLength(attribute, 4);
  return problem === undefined ? valid(message.buffer.readUInt8(attribute.offset)) : invalid(problem);
}

export function encodeRequestedTransport(protocol: number): StunAttributeValue {
  if (!Number.isInteger(protocol) || protocol < 0 || protocol > 0xff) {
    throw new RangeError(`REQUESTED-TRANSPORT protocol must be a byte, got ${protocol}`);
  }
  const value = Buffer.alloc(4);
  value.writeUInt8(protocol, 0);
  return { type: AttributeType.RequestedTransport, value };
}

/** REQUESTED-ADDRESS-FAMILY: 0x01 (IPv4) or 0x02 (IPv6) in the first byte, then 3 reserved bytes. */
export function readRequestedAddressFamily(message: StunMessage, attribute: StunAttributeRef): AttributeResult<4 | 6> {
  const problem = expectLength(attribute, 4);
  if (problem !== undefined) return invalid(problem);
  const wireFamily = message.buffer.readUInt8(attribute.offset);
  if (wireFamily === WIRE_FAMILY_IPV4) return valid(4);
  if (wireFamily === WIRE_FAMILY_IPV6) return valid(6);
  // RFC 8656 §7.2 answers an unknown family with 440 (Address Family not Supported); the reason says so.
  return invalid(`REQUESTED-ADDRESS-FAMILY is 0x${wireFamily.toString(16).padStart(2, "0")}; only 0x01 (IPv4) and 0x02 (IPv6) exist`);
}

export function encodeRequestedAddressFamily(family: 4 | 6): StunAttributeValue {
  const value = Buffer.alloc(4);
  value.writeUInt8(family === 4 ? WIRE_FAMILY_IPV4 : WIRE_FAMILY_IPV6, 0);
  return { type: AttributeType.RequestedAddressFamily, value };
}

const EVEN_PORT_RESERVE_NEXT = 0x80;

/** EVEN-PORT: one byte whose top bit (R) asks the server to also reserve the next-higher port. */
export function readEvenPort(message: StunMessage, attribute: StunAttributeRef): AttributeResult<{ readonly reserveNextPort: boolean }> {
  const problem = expectLength(attribute, 1);
  if (problem !== undefined) return invalid(problem);
  return valid({ reserveNextPort: (message.buffer.readUInt8(attribute.offset) & EVEN_PORT_RESERVE_NEXT) !== 0 });
}

export function encodeEvenPort(reserveNextPort: boolean): StunAttributeValue {
  return { type: AttributeType.EvenPort, value: Buffer.from([reserveNextPort ? EVEN_PORT_RESERVE_NEXT : 0]) };
}

/** RESERVATION-TOKEN is 8 opaque bytes (RFC 8656 §18). */
export const RESERVATION_TOKEN_LENGTH = 8;

/**
 * RESERVATION-TOKEN: names a relay port the server holds for a later Allocate. Returned as a copy, so
 * the token outlives the request it came in.
 */
export function readReservationToken(message: StunMessage, attribute: StunAttributeRef): AttributeResult<Buffer> {
  const problem = expectLength(attribute, RESERVATION_TOKEN_LENGTH);
  if (problem !== undefined) return invalid(problem);
  return valid(Buffer.from(message.buffer.subarray(attribute.offset, attribute.offset + RESERVATION_TOKEN_LENGTH)));
}

export function encodeReservationToken(token: Uint8Array): StunAttributeValue {
  if (token.length !== RESERVATION_TOKEN_LENGTH) {
    throw new RangeError(`RESERVATION-TOKEN must be ${RESERVATION_TOKEN_LENGTH} bytes, got ${token.length}`);
  }
  return { type: AttributeType.ReservationToken, value: Buffer.from(token) };
}

/** DATA: the application payload of a Send or Data indication, as a view into the received buffer (no copy). */
export function dataView(message: StunMessage, attribute: StunAttributeRef): Buffer {
  return message.buffer.subarray(attribute.offset, attribute.offset + attribute.length);
}

export function encodeData(payload: Uint8Array): StunAttributeValue {
  return { type: AttributeType.Data, value: payload };
}
