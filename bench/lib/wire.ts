/**
 * The load generator's hot path, by hand: ChannelData and Send indications built from a template per
 * allocation, and the payload found in what comes back (ChannelData or a Data indication), without
 * decoding whole STUN messages. The control plane (Allocate, ChannelBind, CreatePermission) uses the
 * relay's own codec (relay/stun/*) instead; see generator.ts.
 *
 * Payload layout (every message is `size` bytes of application data): bytes 0-3 the sequence number,
 * 4-11 the send time (performance.now(), ms, float64), the rest filled with 0x07 like coturn's uclient.
 */
import { AttributeType, MAGIC_COOKIE, StunClass, StunMethod, stunMessageType } from "../../relay/stun/constants.js";

export const PAYLOAD_HEADER_BYTES = 12;
const CHANNEL_HEADER_BYTES = 4;
const STUN_HEADER_BYTES = 20;
const XOR_PEER_ADDRESS_BYTES = 4 + 8; // IPv4 only
const DATA_ATTRIBUTE_OFFSET = STUN_HEADER_BYTES + XOR_PEER_ADDRESS_BYTES;

function fillPayload(target: Buffer, offset: number, size: number): void {
  target.fill(7, offset, offset + size);
}

/**
 * A ChannelData message for `channel` with `size` bytes of payload: unpadded for UDP, padded to a multiple
 * of 4 bytes for TCP and TLS (`stream`), as RFC 8656 §12.5 requires there (the length field says `size`).
 */
export function channelDataTemplate(channel: number, size: number, stream = false): Buffer {
  const frame = Buffer.alloc(stream ? (CHANNEL_HEADER_BYTES + size + 3) & ~3 : CHANNEL_HEADER_BYTES + size);
  frame.writeUInt16BE(channel, 0);
  frame.writeUInt16BE(size, 2);
  fillPayload(frame, CHANNEL_HEADER_BYTES, size);
  return frame;
}

/** Offset of the payload in a channelDataTemplate. */
export const CHANNEL_PAYLOAD_OFFSET = CHANNEL_HEADER_BYTES;

/**
 * A Send indication to `peerAddress:peerPort` (IPv4) carrying `size` bytes: header, XOR-PEER-ADDRESS, DATA.
 * The transaction id (bytes 8-19) is rewritten per message by `stampSend`.
 */
export function sendIndicationTemplate(peerAddress: string, peerPort: number, size: number): Buffer {
  const padded = (size + 3) & ~3;
  const frame = Buffer.alloc(DATA_ATTRIBUTE_OFFSET + 4 + padded);
  frame.writeUInt16BE(stunMessageType(StunMethod.Send, StunClass.Indication), 0);
  frame.writeUInt16BE(frame.length - STUN_HEADER_BYTES, 2);
  frame.writeUInt32BE(MAGIC_COOKIE, 4);
  let at = STUN_HEADER_BYTES;
  frame.writeUInt16BE(AttributeType.XorPeerAddress, at);
  frame.writeUInt16BE(8, at + 2);
  frame.writeUInt8(0, at + 4);
  frame.writeUInt8(0x01, at + 5);
  frame.writeUInt16BE(peerPort ^ (MAGIC_COOKIE >>> 16), at + 6);
  const octets = peerAddress.split(".").map(Number);
  const ip = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  frame.writeUInt32BE((ip ^ MAGIC_COOKIE) >>> 0, at + 8);
  at += XOR_PEER_ADDRESS_BYTES;
  frame.writeUInt16BE(AttributeType.Data, at);
  frame.writeUInt16BE(size, at + 2);
  fillPayload(frame, at + 4, size);
  return frame;
}

/** Offset of the payload in a sendIndicationTemplate. */
export const SEND_PAYLOAD_OFFSET = DATA_ATTRIBUTE_OFFSET + 4;

/** Writes sequence number and send time into a copy of `template` at `payloadOffset` (and a fresh transaction id for STUN). */
export function stamp(template: Buffer, payloadOffset: number, seq: number, now: number, stun: boolean): Buffer {
  const frame = Buffer.allocUnsafe(template.length);
  template.copy(frame);
  frame.writeUInt32BE(seq >>> 0, payloadOffset);
  frame.writeDoubleBE(now, payloadOffset + 4);
  if (stun) {
    // Unique per message; not secret (indications carry no integrity and get no answer).
    frame.writeUInt32BE(seq >>> 0, 8);
    frame.writeDoubleBE(now, 12);
  }
  return frame;
}

/**
 * Where the payload starts in a datagram from the server: after the 4-byte ChannelData header, or in the
 * DATA attribute of a Data indication; -1 for anything else (responses are handled by the caller).
 */
export function payloadOffset(datagram: Buffer): number {
  if (datagram.length < 4) return -1;
  const first = datagram[0]!;
  if (first >= 0x40 && first <= 0x7f) return datagram.length >= CHANNEL_HEADER_BYTES + PAYLOAD_HEADER_BYTES ? CHANNEL_HEADER_BYTES : -1;
  if (datagram.length < STUN_HEADER_BYTES || datagram.readUInt16BE(0) !== DATA_INDICATION_TYPE) return -1;
  let at = STUN_HEADER_BYTES;
  const end = Math.min(datagram.length, STUN_HEADER_BYTES + datagram.readUInt16BE(2));
  while (at + 4 <= end) {
    const type = datagram.readUInt16BE(at);
    const length = datagram.readUInt16BE(at + 2);
    if (type === AttributeType.Data) return length >= PAYLOAD_HEADER_BYTES && at + 4 + length <= end ? at + 4 : -1;
    at += 4 + ((length + 3) & ~3);
  }
  return -1;
}

const DATA_INDICATION_TYPE = stunMessageType(StunMethod.Data, StunClass.Indication);

/** True for the first byte of a STUN message (not ChannelData). */
export function isStun(datagram: Buffer): boolean {
  return datagram.length >= STUN_HEADER_BYTES && datagram[0]! < 0x40;
}
