/**
 * Send and Data indications on the data path (RFC 8656 §10), read and written without the generic
 * codec: no attribute list, no attribute objects, no intermediate buffers. The only allocations are
 * the outgoing datagram itself and the peer address as text (the permission lookup key).
 */
import { randomFillSync } from "node:crypto";
import { readIpv4, readIpv6 } from "../policy/ip-text.js";
import { formatIpv4, formatIpv6 } from "../stun/ip-address.js";
import { AttributeType, MAGIC_COOKIE, STUN_HEADER_LENGTH, StunClass, StunMethod, UNDERSTOOD_ATTRIBUTES, stunMessageType } from "../stun/constants.js";

const SEND_INDICATION = stunMessageType(StunMethod.Send, StunClass.Indication);
const DATA_INDICATION = stunMessageType(StunMethod.Data, StunClass.Indication);
const COOKIE_HIGH = MAGIC_COOKIE >>> 16;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;

export function isSendIndication(datagram: Buffer): boolean {
  return datagram.length >= STUN_HEADER_LENGTH && datagram.readUInt16BE(0) === SEND_INDICATION;
}

/** Where a Send indication's peer and payload are; one object reused for every datagram. */
export interface SendIndication {
  peerAddress: string;
  peerPort: number;
  dataOffset: number;
  dataLength: number;
}

/**
 * Reads a Send indication into `out`; false when the datagram is not a well-formed one: bad header,
 * an attribute running past the end, a comprehension-required attribute the relay does not know
 * (RFC 8489 §7.3.2: such indications are discarded), or no XOR-PEER-ADDRESS or DATA.
 */
export function readSendIndication(datagram: Buffer, out: SendIndication): boolean {
  const length = datagram.length;
  if (length < STUN_HEADER_LENGTH || datagram.readUInt16BE(0) !== SEND_INDICATION) return false;
  if (datagram.readUInt32BE(4) !== MAGIC_COOKIE || datagram.readUInt16BE(2) !== length - STUN_HEADER_LENGTH || length % 4 !== 0) return false;
  let peer = -1;
  let peerLength = 0;
  let data = -1;
  let dataLength = 0;
  let position = STUN_HEADER_LENGTH;
  // The framing rules of the full decoder (message.ts): FINGERPRINT last; after MESSAGE-INTEGRITY only
  // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count, anything else is ignored.
  let afterIntegrity = false;
  let afterIntegritySha256 = false;
  while (position + 4 <= length) {
    const type = datagram.readUInt16BE(position);
    const valueLength = datagram.readUInt16BE(position + 2);
    const value = position + 4;
    if (value + valueLength > length) return false;
    if (type === AttributeType.Fingerprint) {
      if (valueLength !== 4 || value + 4 !== length) return false;
    } else if (afterIntegritySha256) {
      // ignored
    } else if (type === AttributeType.MessageIntegritySha256) {
      if (valueLength < 16 || valueLength > 32 || valueLength % 4 !== 0) return false;
      afterIntegritySha256 = true;
    } else if (afterIntegrity) {
      // ignored
    } else if (type === AttributeType.MessageIntegrity) {
      if (valueLength !== 20) return false;
      afterIntegrity = true;
    } else if (type === AttributeType.XorPeerAddress) {
      if (peer === -1) {
        peer = value;
        peerLength = valueLength;
      }
    } else if (type === AttributeType.Data) {
      if (data === -1) {
        data = value;
        dataLength = valueLength;
      }
    } else if (type < 0x8000 && !UNDERSTOOD_ATTRIBUTES.has(type)) {
      return false;
    }
    position = value + ((valueLength + 3) & ~3);
  }
  if (position !== length || peer === -1 || data === -1) return false;
  const family = datagram[peer + 1];
  if (family === FAMILY_IPV4 && peerLength === 8) {
    out.peerAddress = formatIpv4(datagram, peer + 4, datagram, 4);
  } else if (family === FAMILY_IPV6 && peerLength === 20) {
    out.peerAddress = formatIpv6(datagram, peer + 4, datagram, 4);
  } else {
    return false;
  }
  out.peerPort = datagram.readUInt16BE(peer + 2) ^ COOKIE_HIGH;
  out.dataOffset = data;
  out.dataLength = dataLength;
  return true;
}

/** Random bytes for transaction ids, drawn in bulk: one system call per 1024 indications. */
const RANDOM_POOL = Buffer.allocUnsafe(12 * 1024);
let randomOffset = RANDOM_POOL.length;
const IPV6_GROUPS = new Uint16Array(8);

/**
 * A Data indication carrying `data[dataOffset .. dataOffset + dataLength)` from the peer
 * `address:port`, ready to send (a new buffer: the data is copied); null when the address is not
 * IP text (it always is when it comes from a socket).
 */
export function encodeDataIndication(address: string, port: number, data: Buffer, dataOffset = 0, dataLength = data.length - dataOffset): Buffer | null {
  const ipv6 = address.includes(":");
  const addressLength = ipv6 ? 16 : 4;
  const peerValueLength = 4 + addressLength;
  const padding = (4 - (dataLength % 4)) % 4;
  const bodyLength = 4 + peerValueLength + 4 + dataLength + padding;
  const message = Buffer.allocUnsafe(STUN_HEADER_LENGTH + bodyLength);

  message.writeUInt16BE(DATA_INDICATION, 0);
  message.writeUInt16BE(bodyLength, 2);
  message.writeUInt32BE(MAGIC_COOKIE, 4);
  if (randomOffset + 12 > RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    randomOffset = 0;
  }
  RANDOM_POOL.copy(message, 8, randomOffset, randomOffset + 12);
  randomOffset += 12;

  // XOR-PEER-ADDRESS: reserved, family, port ^ cookie high bits, address ^ (cookie + transaction id).
  let offset = STUN_HEADER_LENGTH;
  message.writeUInt16BE(AttributeType.XorPeerAddress, offset);
  message.writeUInt16BE(peerValueLength, offset + 2);
  message[offset + 4] = 0;
  message[offset + 5] = ipv6 ? FAMILY_IPV6 : FAMILY_IPV4;
  message.writeUInt16BE(port ^ COOKIE_HIGH, offset + 6);
  const addressAt = offset + 8;
  if (ipv6) {
    if (readIpv6(address, IPV6_GROUPS) !== undefined) return null;
    for (let i = 0; i < 8; i++) message.writeUInt16BE(IPV6_GROUPS[i]!, addressAt + 2 * i);
  } else {
    const value = readIpv4(address);
    if (typeof value !== "number") return null;
    message.writeUInt32BE(value, addressAt);
  }
  for (let i = 0; i < addressLength; i++) message[addressAt + i]! ^= message[4 + i]!;

  // DATA, zero-padded to 4 bytes.
  offset = addressAt + addressLength;
  message.writeUInt16BE(AttributeType.Data, offset);
  message.writeUInt16BE(dataLength, offset + 2);
  data.copy(message, offset + 4, dataOffset, dataOffset + dataLength);
  message.fill(0, offset + 4 + dataLength);
  return message;
}
